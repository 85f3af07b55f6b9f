// Includes Eigen's core with GCC 12's false positives silenced for Eigen's
// headers only: under -march=native the compiler's own AVX-512 intrinsics
// initialise a dummy register from itself (`__m512d __Y = __Y;`), which
// -W(maybe-)uninitialized flags wherever Eigen's kernels are inlined (GCC bug
// 105593, fixed in GCC 13). Include this first, instead of <Eigen/Core>, in
// every file that uses Eigen, so our own code keeps both warnings.
#ifndef MTPS_WORKER_NN_EIGEN_H_
#define MTPS_WORKER_NN_EIGEN_H_

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace mtps {

// The matrix type of every layer and model: row-major, so a batch is B rows.
template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace mtps

#endif  // MTPS_WORKER_NN_EIGEN_H_
