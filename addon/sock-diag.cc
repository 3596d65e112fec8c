// Exact socket lookups through NETLINK_SOCK_DIAG, for the packet mode's
// process attribution: one TCP 4-tuple -> the socket's state, uid and inode
// (a hash lookup in the kernel, where /proc/net/tcp walks the whole table).
// A SockDiag belongs to one network namespace: this process's, or the one at
// a /proc/<pid>/ns/net path (entered on this thread just to open the socket).
#include "sock-diag.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// The kernel answers within the request's sendmsg; this only guards a stuck recv.
constexpr int kRecvTimeoutMs = 200;

const char* CodeOf(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "EUNKNOWN";
  }
}

void Throw(Napi::Env env, const std::string& op, int err) {
  Napi::Error e = Napi::Error::New(env, "failed to " + op + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, CodeOf(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("operation", Napi::String::New(env, op));
  e.ThrowAsJavaScriptException();
}

// A sock_diag socket in the current network namespace; -errno on failure.
int OpenDiagSocket() {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -errno;
  struct timeval tv = {kRecvTimeoutMs / 1000, (kRecvTimeoutMs % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

// The same, in the namespace at ns_path: enter it, open, come back.
int OpenDiagSocketIn(const std::string& ns_path, std::string* op) {
  int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (own < 0) {
    *op = "open this thread's network namespace";
    return -errno;
  }
  int target = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(own);
    *op = "open network namespace " + ns_path;
    return -err;
  }
  int fd;
  if (setns(target, CLONE_NEWNET)) {
    fd = -errno;
    *op = "enter network namespace " + ns_path;
  } else {
    fd = OpenDiagSocket();
    if (fd < 0) *op = "open a sock_diag socket in " + ns_path;
    if (setns(own, CLONE_NEWNET)) {
      // this thread cannot be left in another namespace
      fprintf(stderr, "packetbeat-ebpf: cannot return to the agent's network namespace: %s\n", strerror(errno));
      abort();
    }
  }
  close(target);
  close(own);
  return fd;
}

class SockDiag : public Napi::ObjectWrap<SockDiag> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SockDiag",
                       {
                           InstanceMethod("lookup", &SockDiag::Lookup),
                           InstanceMethod("close", &SockDiag::Close),
                       });
  }

  // new SockDiag(nsPath?: string)
  explicit SockDiag(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SockDiag>(info) {
    Napi::Env env = info.Env();
    std::string op = "open a sock_diag socket";
    fd_ = info[0].IsString() ? OpenDiagSocketIn(info[0].As<Napi::String>().Utf8Value(), &op) : OpenDiagSocket();
    if (fd_ < 0) {
      int err = -fd_;
      fd_ = -1;
      Throw(env, op, err);
      return;
    }
    cleanup_ = env.AddCleanupHook(CleanupHook, this);
    cleanup_hook_ = true;
  }

  ~SockDiag() override { Destroy(); }

 private:
  static void CleanupHook(SockDiag* self) {
    self->cleanup_hook_ = false;
    self->Destroy();
  }

  // lookup(family: 4|6, local: Buffer, localPort, remote: Buffer, remotePort)
  //   -> [state, uid, inode] of the socket with that local and remote end, or of
  //      the listener that would take such a connection; null when there is none.
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      Napi::Error e = Napi::Error::New(env, "sock_diag socket is closed");
      e.Set("code", "ECLOSED");
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsNumber() || !info[3].IsBuffer() || !info[4].IsNumber()) {
      Napi::TypeError::New(env, "lookup expects (family, local, localPort, remote, remotePort)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
    size_t alen = family == AF_INET6 ? 16 : 4;
    Napi::Buffer<uint8_t> local = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Buffer<uint8_t> remote = info[3].As<Napi::Buffer<uint8_t>>();
    if (local.Length() != alen || remote.Length() != alen) {
      Napi::TypeError::New(env, "lookup: addresses must be 4 (IPv4) or 16 (IPv6) bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    struct {
      struct nlmsghdr nlh;
      struct inet_diag_req_v2 r;
    } req = {};
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.nlh.nlmsg_seq = ++seq_;
    req.r.sdiag_family = family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0U;
    req.r.id.idiag_sport = htons(static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()));
    req.r.id.idiag_dport = htons(static_cast<uint16_t>(info[4].As<Napi::Number>().Uint32Value()));
    memcpy(req.r.id.idiag_src, local.Data(), alen);
    memcpy(req.r.id.idiag_dst, remote.Data(), alen);
    req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (send(fd_, &req, sizeof(req), 0) < 0) {
      Throw(env, "send a sock_diag request", errno);
      return env.Undefined();
    }
    alignas(struct nlmsghdr) char buf[8192];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        Throw(env, "read a sock_diag answer", errno == EAGAIN ? ETIMEDOUT : errno);
        return env.Undefined();
      }
      int len = static_cast<int>(n);
      for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq_) continue;  // an answer to a request that timed out
        if (h->nlmsg_type == NLMSG_ERROR) {
          const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
          if (e->error == 0 || e->error == -ENOENT) return env.Null();
          Throw(env, "look up a socket", -e->error);
          return env.Undefined();
        }
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
          const struct inet_diag_msg* m = static_cast<const struct inet_diag_msg*>(NLMSG_DATA(h));
          Napi::Array out = Napi::Array::New(env, 3);
          out.Set(0u, m->idiag_state);
          out.Set(1u, m->idiag_uid);
          out.Set(2u, m->idiag_inode);
          return out;
        }
        if (h->nlmsg_type == NLMSG_DONE) return env.Null();
      }
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Destroy();
    return info.Env().Undefined();
  }

  void Destroy() {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    if (cleanup_hook_) {
      cleanup_hook_ = false;
      cleanup_.Remove(Env());
    }
  }

  int fd_ = -1;
  uint32_t seq_ = 0;
  bool cleanup_hook_ = false;
  Napi::Env::CleanupHook<void (*)(SockDiag*), SockDiag> cleanup_;
};

}  // namespace

namespace pbe {

Napi::Function InitSockDiag(Napi::Env env) { return SockDiag::Init(env); }

}  // namespace pbe
