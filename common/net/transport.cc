// Transport is an interface; see common/net/zmq_transport.cc for ZeroMQ.
#include "common/net/transport.h"
