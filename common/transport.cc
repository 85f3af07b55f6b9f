// Transport is an interface; see common/zmq_transport.cc for ZeroMQ.
#include "common/transport.h"
