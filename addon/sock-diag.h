// NETLINK_SOCK_DIAG socket lookups (see sock-diag.cc).
#ifndef PBE_SOCK_DIAG_H
#define PBE_SOCK_DIAG_H

#include <napi.h>

namespace pbe {

// The SockDiag class: new SockDiag(nsPath?), lookup(...), close().
Napi::Function InitSockDiag(Napi::Env env);

}  // namespace pbe

#endif  // PBE_SOCK_DIAG_H
