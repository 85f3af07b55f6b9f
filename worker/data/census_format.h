// The raw UCI census-income (KDD) line format (DataConfig.format CENSUS_RAW):
// 42 values separated by ", ", no header, values stripped of surrounding
// spaces. Missing values are "?" or "NA" and are ordinary categorical values.
//
// Columns are named (kCensusColumnNames below, in file order) after the
// attribute list of census-income.names, in snake_case. The 7 continuous
// columns are age, wage_per_hour, capital_gains, capital_losses,
// dividends_from_stocks, num_persons_worked_for_employer and
// weeks_worked_in_year; instance_weight is a sampling weight, not a feature;
// income is "- 50000." or "50000+."; the numeric-coded columns
// detailed_industry_recode, detailed_occupation_recode,
// own_business_or_self_employed, veterans_benefits and year are categorical.
#ifndef MTPS_WORKER_DATA_CENSUS_FORMAT_H_
#define MTPS_WORKER_DATA_CENSUS_FORMAT_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace mtps {

inline constexpr int kCensusNumColumns = 42;

inline constexpr std::array<std::string_view, kCensusNumColumns> kCensusColumnNames = {
    "age",                                        // 0
    "class_of_worker",                            // 1
    "detailed_industry_recode",                   // 2
    "detailed_occupation_recode",                 // 3
    "education",                                  // 4
    "wage_per_hour",                              // 5
    "enroll_in_edu_inst_last_wk",                 // 6
    "marital_status",                             // 7
    "major_industry_code",                        // 8
    "major_occupation_code",                      // 9
    "race",                                       // 10
    "hispanic_origin",                            // 11
    "sex",                                        // 12
    "member_of_a_labor_union",                    // 13
    "reason_for_unemployment",                    // 14
    "full_or_part_time_employment_stat",          // 15
    "capital_gains",                              // 16
    "capital_losses",                             // 17
    "dividends_from_stocks",                      // 18
    "tax_filer_stat",                             // 19
    "region_of_previous_residence",               // 20
    "state_of_previous_residence",                // 21
    "detailed_household_and_family_stat",         // 22
    "detailed_household_summary_in_household",    // 23
    "instance_weight",                            // 24
    "migration_code_change_in_msa",               // 25
    "migration_code_change_in_reg",               // 26
    "migration_code_move_within_reg",             // 27
    "live_in_this_house_1_year_ago",              // 28
    "migration_prev_res_in_sunbelt",              // 29
    "num_persons_worked_for_employer",            // 30
    "family_members_under_18",                    // 31
    "country_of_birth_father",                    // 32
    "country_of_birth_mother",                    // 33
    "country_of_birth_self",                      // 34
    "citizenship",                                // 35
    "own_business_or_self_employed",              // 36
    "fill_inc_questionnaire_for_veterans_admin",  // 37
    "veterans_benefits",                          // 38
    "weeks_worked_in_year",                       // 39
    "year",                                       // 40
    "income",                                     // 41
};

// kCensusColumnNames as strings (for FeatureExtractor::Create).
std::vector<std::string> CensusColumnNames();

// Splits one raw census line into its values (views into `line`, stripped).
// A line without exactly kCensusNumColumns values is InvalidArgument naming
// path:line_number and the count found.
Status SplitCensusLine(std::string_view line, const std::string& path, int64_t line_number,
                       std::vector<std::string_view>* fields);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_CENSUS_FORMAT_H_
