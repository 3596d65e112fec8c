// Thin native side of the `packet` capture mode: load the socket filter
// (bpf/packet.bpf.c), open AF_PACKET sockets with it attached, fill the port
// filter, drain the ring buffer in batches on the libuv loop, read the
// counters, close. Validation, defaults and decoding live in TypeScript.
#include <napi.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "packet.h"
#include "packet.skel.h"
}

#include "ring-drain.h"
#include "sched-guard.h"
#include "signals-held.h"
#include "sock-diag.h"

namespace {

// libbpf's messages go to a bounded buffer; errors carry its tail.
std::string g_libbpf_log;
bool g_libbpf_debug = false;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  char line[1024];
  vsnprintf(line, sizeof(line), fmt, args);
  if (g_libbpf_debug) fputs(line, stderr);
  if (level == LIBBPF_DEBUG) return 0;
  g_libbpf_log += line;
  if (g_libbpf_log.size() > 16384) g_libbpf_log.erase(0, g_libbpf_log.size() - 16384);
  return 0;
}

std::string LogTail() {
  size_t start = g_libbpf_log.size() > 2048 ? g_libbpf_log.size() - 2048 : 0;
  return g_libbpf_log.substr(start);
}

const char* ErrnoCode(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case E2BIG: return "E2BIG";
    case EBUSY: return "EBUSY";
    case ENOTSUP: return "ENOTSUP";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case ESRCH: return "ESRCH";
    default: return "EUNKNOWN";
  }
}

// Throws `failed to <op>: <reason>` with code, errno, operation and libbpf's log.
void ThrowErrno(Napi::Env env, const std::string& op, int err) {
  if (err < 0) err = -err;
  Napi::Error e = Napi::Error::New(env, "failed to " + op + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoCode(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("operation", Napi::String::New(env, op));
  e.Set("libbpfLog", Napi::String::New(env, LogTail()));
  e.ThrowAsJavaScriptException();
}

// A record is its header plus cap_len bytes.
size_t RecordSize(const void* data, size_t size) {
  if (size < sizeof(struct pbe_packet)) return 0;
  return sizeof(struct pbe_packet) + static_cast<const struct pbe_packet*>(data)->cap_len;
}

class PacketCapture : public Napi::ObjectWrap<PacketCapture> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "PacketCapture",
                       {
                           InstanceMethod("attach", &PacketCapture::Attach),
                           InstanceMethod("setPorts", &PacketCapture::SetPorts),
                           InstanceMethod("start", &PacketCapture::Start),
                           InstanceMethod("drain", &PacketCapture::Drain),
                           InstanceMethod("recordsRead", &PacketCapture::RecordsRead),
                           InstanceMethod("pause", &PacketCapture::Pause),
                           InstanceMethod("resume", &PacketCapture::Resume),
                           InstanceMethod("counters", &PacketCapture::Counters),
                           InstanceMethod("guardSched", &PacketCapture::GuardSched),
                           InstanceMethod("schedGuard", &PacketCapture::SchedGuardState),
                           InstanceMethod("programs", &PacketCapture::Programs),
                           InstanceMethod("sockets", &PacketCapture::Sockets),
                           InstanceMethod("close", &PacketCapture::Close),
                       });
  }

  // new PacketCapture({ maxPayload, wakeupBytes, ringBytes, debug })
  explicit PacketCapture(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PacketCapture>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      Napi::TypeError::New(env, "PacketCapture options must be an object").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* key) -> double {
      Napi::Value v = o.Get(key);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    };
    g_libbpf_debug = o.Get("debug").ToBoolean().Value();
    libbpf_set_print(LibbpfPrint);
    g_libbpf_log.clear();

    skel_ = packet_bpf__open();
    if (!skel_) {
      ThrowErrno(env, "open BPF object", errno);
      return;
    }
    skel_->rodata->max_payload = static_cast<__u32>(num("maxPayload"));
    skel_->rodata->wakeup_bytes = static_cast<__u64>(num("wakeupBytes"));
    int err = bpf_map__set_max_entries(skel_->maps.events, static_cast<__u32>(num("ringBytes")));
    if (err) {
      ThrowErrno(env, "size ring buffer", err);
      Destroy();
      return;
    }
    {
      pbe::SignalsHeld held;  // a pending signal makes the verifier give up
      err = packet_bpf__load(skel_);
    }
    if (err) {
      ThrowErrno(env, "load BPF programs", err);
      Destroy();
      return;
    }
    cleanup_ = env.AddCleanupHook(CleanupHook, this);
    cleanup_hook_ = true;
  }

  ~PacketCapture() override { Destroy(); }

 private:
  static void CleanupHook(PacketCapture* self) {
    self->cleanup_hook_ = false;
    self->Destroy();
  }

  // One AF_PACKET socket with the filter attached, bound to ifindex (0: every
  // interface). Created with protocol 0 so that it receives nothing until the
  // filter is attached and bind() names ETH_P_ALL. Returns the fd or -errno.
  int OpenSocket(int ifindex, std::string* op) {
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *op = "open AF_PACKET socket";
      return -errno;
    }
    int prog = bpf_program__fd(skel_->progs.handle_packet);
    // the filter returns 0 for every packet: the queue stays empty, keep it small
    int rcvbuf = 4096;
    struct sockaddr_ll sll = {};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog))) {
      *op = "attach the socket filter";
    } else if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf))) {
      *op = "size the packet socket";
    } else if (bind(fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll))) {
      *op = ifindex ? "bind the packet socket to interface " + std::to_string(ifindex) : "bind the packet socket";
    } else {
      return fd;
    }
    int err = errno;
    close(fd);
    return -err;
  }

  // attach(ifindexes: number[]): one socket per interface, or one for all when empty.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    if (!sockets_.empty()) {
      Napi::Error::New(env, "packet capture already attached").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::vector<int> ifindexes;
    if (info[0].IsArray()) {
      Napi::Array a = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) ifindexes.push_back(a.Get(i).As<Napi::Number>().Int32Value());
    }
    if (ifindexes.empty()) ifindexes.push_back(0);
    for (int ifindex : ifindexes) {
      std::string op;
      int fd = OpenSocket(ifindex, &op);
      if (fd < 0) {
        CloseSockets();
        ThrowErrno(env, op, fd);
        return env.Undefined();
      }
      sockets_.push_back(fd);
    }
    return env.Undefined();
  }

  // setPorts([[port, protocolId], ...]) replaces the port filter.
  Napi::Value SetPorts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    if (!info[0].IsArray()) {
      Napi::TypeError::New(env, "setPorts expects an array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int fd = bpf_map__fd(skel_->maps.ports);
    __u16 key, next;
    while (bpf_map_get_next_key(fd, nullptr, &next) == 0) {
      key = next;
      if (bpf_map_delete_elem(fd, &key)) {
        ThrowErrno(env, "clear ports map", errno);
        return env.Undefined();
      }
    }
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Array pair = a.Get(i).As<Napi::Array>();
      __u16 port = static_cast<__u16>(pair.Get(0u).As<Napi::Number>().Uint32Value());
      struct pbe_pkt_port_value v = {};
      v.protocol = static_cast<__u8>(pair.Get(1u).As<Napi::Number>().Uint32Value());
      if (bpf_map_update_elem(fd, &port, &v, BPF_ANY)) {
        ThrowErrno(env, "update ports map", errno);
        return env.Undefined();
      }
    }
    return env.Undefined();
  }

  // start(onBatch: (batch: Buffer) => void, intervalMs: number, minIntervalMs?: number)
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    int err = drain_.StartFromJs(info, Value(), bpf_map__fd(skel_->maps.events), RecordSize, "packet capture");
    if (err) ThrowErrno(env, "create ring buffer reader", err);
    return env.Undefined();
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    drain_.Pause();
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    drain_.Resume();
    return info.Env().Undefined();
  }

  // drain(): consume what is in the ring buffer now, a turn's worth (batches go
  // to onBatch). drain(budgetMs): all of it, paused or not, for up to budgetMs
  // (the last drain before closing); returns whether the ring buffer was emptied.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    if (info.Length() > 0 && info[0].IsNumber()) {
      guard_.Stop();  // the last drain at normal priority
      uint64_t budget_ns = static_cast<uint64_t>(std::max(0.0, info[0].As<Napi::Number>().DoubleValue()) * 1e6);
      return Napi::Boolean::New(info.Env(), drain_.started() && drain_.DrainAll(budget_ns));
    }
    (void)drain_.Drain();
    return info.Env().Undefined();
  }

  // guardSched({ highBytes, lowBytes, holdMs, boostShare, burstMs }): sched_idle auto (sched-guard.h).
  Napi::Value GuardSched(const Napi::CallbackInfo& info) {
    if (!skel_) return Closed(info.Env());
    return pbe::GuardSchedCall(info, guard_, bpf_map__fd(skel_->maps.events));
  }

  Napi::Value SchedGuardState(const Napi::CallbackInfo& info) { return pbe::SchedGuardStats(info.Env(), guard_); }

  // recordsRead(): records taken from the ring buffer so far (beside the kernel's count of those written).
  Napi::Value RecordsRead(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(drain_.records()));
  }

  // counters() -> array of sums over CPUs, indexed by enum pbe_pkt_counter.
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) {
      ThrowErrno(env, "count CPUs", ncpu);
      return env.Undefined();
    }
    std::vector<__u64> values(ncpu);
    Napi::Array out = Napi::Array::New(env, PBE_PKT_CNT__MAX);
    int fd = bpf_map__fd(skel_->maps.counters);
    for (__u32 k = 0; k < PBE_PKT_CNT__MAX; k++) {
      if (bpf_map_lookup_elem(fd, &k, values.data())) {
        ThrowErrno(env, "read counters", errno);
        return env.Undefined();
      }
      __u64 sum = 0;
      for (int c = 0; c < ncpu; c++) sum += values[c];
      out.Set(k, Napi::Number::New(env, static_cast<double>(sum)));
    }
    return out;
  }

  // programs() -> ids of the loaded programs (the socket filter).
  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    if (!skel_) return out;
    struct bpf_prog_info pi = {};
    __u32 len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(skel_->progs.handle_packet), &pi, &len) == 0) out.Set(0u, pi.id);
    return out;
  }

  // sockets() -> how many AF_PACKET sockets are open.
  Napi::Value Sockets(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(sockets_.size()));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Destroy();
    return info.Env().Undefined();
  }

  Napi::Value Closed(Napi::Env env) {
    Napi::Error e = Napi::Error::New(env, "packet capture is closed");
    e.Set("code", "ECLOSED");
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }

  void CloseSockets() {
    for (int fd : sockets_) close(fd);
    sockets_.clear();
  }

  // One cleanup path: sockets (the filter detaches with them), drain, object. Idempotent.
  void Destroy() {
    CloseSockets();
    guard_.Stop();
    drain_.Stop();
    if (skel_) {
      packet_bpf__destroy(skel_);
      skel_ = nullptr;
    }
    if (cleanup_hook_) {
      cleanup_hook_ = false;
      cleanup_.Remove(Env());
    }
  }

  struct packet_bpf* skel_ = nullptr;
  std::vector<int> sockets_;
  pbe::RingDrain drain_;
  pbe::SchedGuard guard_;
  bool cleanup_hook_ = false;
  Napi::Env::CleanupHook<void (*)(PacketCapture*), PacketCapture> cleanup_;
};

// The record layout as this build sees it; TypeScript checks its decoder against it.
Napi::Object Layout(Napi::Env env) {
  Napi::Object l = Napi::Object::New(env);
  Napi::Object f = Napi::Object::New(env);
#define FIELD(name)                                                          \
  do {                                                                       \
    Napi::Object d = Napi::Object::New(env);                                 \
    d.Set("offset", offsetof(struct pbe_packet, name));                      \
    d.Set("size", sizeof(((struct pbe_packet*)nullptr)->name));              \
    f.Set(#name, d);                                                         \
  } while (0)
  FIELD(ts_ns); FIELD(len); FIELD(cap_len); FIELD(tail_len); FIELD(ifindex); FIELD(protocol);
  FIELD(vlan_tci); FIELD(pkt_type); FIELD(vlan_present);
#undef FIELD
  l.Set("fields", f);
  l.Set("headerSize", sizeof(struct pbe_packet));
  l.Set("payloadLimit", PBE_PKT_PAYLOAD_LIMIT);
  l.Set("headroom", PBE_PKT_HEADROOM);
  l.Set("tailLimit", PBE_PKT_TAIL_LIMIT);
  l.Set("maxPorts", PBE_PKT_MAX_PORTS);
  l.Set("counterCount", static_cast<uint32_t>(PBE_PKT_CNT__MAX));
  return l;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("PacketCapture", PacketCapture::Init(env));
  exports.Set("yieldIfIdle", Napi::Function::New(env, pbe::YieldIfIdleCall));
  exports.Set("layout", Layout(env));
  exports.Set("SockDiag", pbe::InitSockDiag(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(pbe_packet, Init)
