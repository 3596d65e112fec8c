// Thin native side of the capture: open/load/attach the BPF skeleton, fill the
// filter maps, drain the ring buffer in batches on the libuv loop, read the
// counters, detach. Validation, defaults and decoding live in TypeScript.
#include <napi.h>
#include <uv.h>

#include <sched.h>

#include <cerrno>
#include <cstddef>
#include <cstdarg>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "capture.h"
#include "capture.skel.h"
#include "signals-held.h"
}

#include "ring-drain.h"
#include "sched-guard.h"

namespace {

// Which programs a capture mode loads, by section prefix; programs matching
// none of the modes (sched/sched_process_exec) load in every mode.
struct ModeSections {
  const char* mode;
  const char* prefixes[3];
};
constexpr ModeSections kModes[] = {
    {"syscall", {"tracepoint/syscalls/", nullptr, nullptr}},
    {"fentry", {"fentry/", "fexit/", nullptr}},
    {"kprobe", {"ksyscall/", "kretsyscall/", nullptr}},
};

// The mode whose programs `section` belongs to, or nullptr for a common program.
const char* ModeOfSection(const char* section) {
  for (const ModeSections& m : kModes)
    for (const char* p : m.prefixes)
      if (p && strncmp(section, p, strlen(p)) == 0) return m.mode;
  return nullptr;
}

// Bytes of one event as its header says: the fixed part and the payload copied.
size_t EventSize(const void* data, size_t size) {
  if (size < sizeof(struct pbe_event)) return 0;
  return sizeof(struct pbe_event) + static_cast<const struct pbe_event*>(data)->cap_len;
}

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

class Capture : public Napi::ObjectWrap<Capture> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Capture",
                       {
                           InstanceMethod("attach", &Capture::Attach),
                           InstanceMethod("setPorts", &Capture::SetPorts),
                           InstanceMethod("setPids", &Capture::SetPids),
                           InstanceMethod("setVerdicts", &Capture::SetVerdicts),
                           InstanceMethod("start", &Capture::Start),
                           InstanceMethod("drain", &Capture::Drain),
                           InstanceMethod("recordsRead", &Capture::RecordsRead),
                           InstanceMethod("pause", &Capture::Pause),
                           InstanceMethod("resume", &Capture::Resume),
                           InstanceMethod("counters", &Capture::Counters),
                           InstanceMethod("guardSched", &Capture::GuardSched),
                           InstanceMethod("schedGuard", &Capture::SchedGuardState),
                           InstanceMethod("programs", &Capture::Programs),
                           InstanceMethod("close", &Capture::Close),
                       });
  }

  // new Capture({ mode, selfTgid, maxPayload, filterPids, allPorts, wakeupBytes, ringBytes, debug })
  // mode: "syscall" | "fentry" | "kprobe" (the hooks the data programs use).
  explicit Capture(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Capture>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      Napi::TypeError::New(env, "Capture options must be an object").ThrowAsJavaScriptException();
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

    skel_ = capture_bpf__open();
    if (!skel_) {
      ThrowErrno(env, "open BPF object", errno);
      return;
    }
    std::string mode = o.Get("mode").IsString() ? o.Get("mode").As<Napi::String>().Utf8Value() : "syscall";
    bool known = false;
    for (const ModeSections& m : kModes) known = known || mode == m.mode;
    if (!known) {
      Napi::TypeError::New(env, "unknown capture mode: " + mode).ThrowAsJavaScriptException();
      Destroy();
      return;
    }
    struct bpf_program* prog;
    bpf_object__for_each_program(prog, skel_->obj) {
      const char* owner = ModeOfSection(bpf_program__section_name(prog));
      if (owner && mode != owner) bpf_program__set_autoload(prog, false);
    }
    skel_->rodata->self_tgid = static_cast<__u32>(num("selfTgid"));
    skel_->rodata->max_payload = static_cast<__u32>(num("maxPayload"));
    skel_->rodata->filter_pids = num("filterPids") > 0 ? 1 : 0;
    skel_->rodata->all_ports = num("allPorts") > 0 ? 1 : 0;
    skel_->rodata->infer = num("infer") > 0 ? 1 : 0;
    skel_->rodata->wakeup_bytes = static_cast<__u64>(num("wakeupBytes"));
    int err = bpf_map__set_max_entries(skel_->maps.events, static_cast<__u32>(num("ringBytes")));
    if (err) {
      ThrowErrno(env, "size ring buffer", err);
      Destroy();
      return;
    }
    {
      pbe::SignalsHeld held;  // a pending signal makes the verifier give up
      err = capture_bpf__load(skel_);
    }
    if (err) {
      ThrowErrno(env, "load BPF programs", err);
      Destroy();
      return;
    }
    cleanup_ = env.AddCleanupHook(CleanupHook, this);
    cleanup_hook_ = true;
  }

  ~Capture() override { Destroy(); }

 private:
  static void CleanupHook(Capture* self) {
    self->cleanup_hook_ = false;
    self->Destroy();
  }

  // attach(names?: string[]) -> [{ program, errno }] of the programs that failed.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    Napi::Array failures = Napi::Array::New(env);
    uint32_t nfail = 0;
    struct bpf_program* prog;
    bpf_object__for_each_program(prog, skel_->obj) {
      if (!bpf_program__autoload(prog)) continue;
      struct bpf_link* link = bpf_program__attach(prog);
      if (!link) {
        int err = errno;
        Napi::Object f = Napi::Object::New(env);
        f.Set("program", bpf_program__name(prog));
        f.Set("errno", err);
        f.Set("code", ErrnoCode(err));
        failures.Set(nfail++, f);
        continue;
      }
      links_.push_back(link);
    }
    return failures;
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
    if (!ClearMap(env, fd, sizeof(__u16), "clear ports map")) return env.Undefined();
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Array pair = a.Get(i).As<Napi::Array>();
      __u16 port = static_cast<__u16>(pair.Get(0u).As<Napi::Number>().Uint32Value());
      struct pbe_port_value v = {};
      v.protocol = static_cast<__u8>(pair.Get(1u).As<Napi::Number>().Uint32Value());
      if (bpf_map_update_elem(fd, &port, &v, BPF_ANY)) {
        ThrowErrno(env, "update ports map", errno);
        return env.Undefined();
      }
    }
    return env.Undefined();
  }

  // setPids([pid, ...]) replaces the pid filter (used when filterPids was set).
  Napi::Value SetPids(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    if (!info[0].IsArray()) {
      Napi::TypeError::New(env, "setPids expects an array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int fd = bpf_map__fd(skel_->maps.pids);
    if (!ClearMap(env, fd, sizeof(__u32), "clear pids map")) return env.Undefined();
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      __u32 pid = a.Get(i).As<Napi::Number>().Uint32Value();
      __u8 one = 1;
      if (bpf_map_update_elem(fd, &pid, &one, BPF_ANY)) {
        ThrowErrno(env, "update pids map", errno);
        return env.Undefined();
      }
    }
    return env.Undefined();
  }

  // setVerdicts([[socketInode, verdict], ...]): content inference decisions.
  Napi::Value SetVerdicts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    if (!info[0].IsArray()) {
      Napi::TypeError::New(env, "setVerdicts expects an array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int fd = bpf_map__fd(skel_->maps.verdicts);
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Array pair = a.Get(i).As<Napi::Array>();
      __u64 ino = static_cast<__u64>(pair.Get(0u).As<Napi::Number>().Int64Value());
      struct pbe_verdict v = {};
      v.verdict = static_cast<__u8>(pair.Get(1u).As<Napi::Number>().Uint32Value());
      // Inference verdicts use BPF_EXIST: a socket closed meanwhile (entry gone) is not
      // brought back. Shadow verdicts are also set on configured ports (no entry yet).
      __u64 flags = v.verdict == PBE_VERDICT_SHADOW ? BPF_ANY : BPF_EXIST;
      if (bpf_map_update_elem(fd, &ino, &v, flags) && errno != ENOENT) {
        ThrowErrno(env, "update verdicts map", errno);
        return env.Undefined();
      }
    }
    return env.Undefined();
  }

  // start(onBatch: (batch: Buffer) => void, intervalMs: number, minIntervalMs?: number)
  // Drained on the loop: woken by the ring buffer and by an adaptive timer, every
  // minIntervalMs while events keep coming (spaced out while they only trickle in:
  // RingDrain::NextInterval), backing off to intervalMs when idle.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    drain_.SpaceTrickle(true);
    int err = drain_.StartFromJs(info, Value(), bpf_map__fd(skel_->maps.events), EventSize, "capture");
    if (err) ThrowErrno(env, "create ring buffer reader", err);
    return env.Undefined();
  }

  // pause(): stop draining (backpressure: the ring buffer holds, then the kernel counts drops).
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

  // counters() -> array of sums over CPUs, indexed by enum pbe_counter.
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) return Closed(env);
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) {
      ThrowErrno(env, "count CPUs", ncpu);
      return env.Undefined();
    }
    std::vector<__u64> values(ncpu);
    Napi::Array out = Napi::Array::New(env, PBE_CNT__MAX);
    int fd = bpf_map__fd(skel_->maps.counters);
    for (__u32 k = 0; k < PBE_CNT__MAX; k++) {
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

  // programs() -> names of the attached programs.
  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (struct bpf_link* l : links_) {
      struct bpf_link_info li = {};
      __u32 len = sizeof(li);
      if (bpf_obj_get_info_by_fd(bpf_link__fd(l), &li, &len) == 0) out.Set(i++, li.prog_id);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Destroy();
    return info.Env().Undefined();
  }

  Napi::Value Closed(Napi::Env env) {
    Napi::Error e = Napi::Error::New(env, "capture is closed");
    e.Set("code", "ECLOSED");
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }

  bool ClearMap(Napi::Env env, int fd, size_t key_size, const char* op) {
    std::vector<uint8_t> key(key_size), next(key_size);
    while (bpf_map_get_next_key(fd, nullptr, next.data()) == 0) {
      if (bpf_map_delete_elem(fd, next.data())) {
        ThrowErrno(env, op, errno);
        return false;
      }
    }
    return true;
  }

  // One cleanup path: handles, links, reader, object. Idempotent.
  void Destroy() {
    guard_.Stop();
    drain_.Stop();
    for (struct bpf_link* l : links_) bpf_link__destroy(l);
    links_.clear();
    if (skel_) {
      capture_bpf__destroy(skel_);
      skel_ = nullptr;
    }
    if (cleanup_hook_) {
      cleanup_hook_ = false;
      cleanup_.Remove(Env());
    }
  }

  struct capture_bpf* skel_ = nullptr;
  std::vector<struct bpf_link*> links_;
  pbe::RingDrain drain_;
  pbe::SchedGuard guard_;
  bool cleanup_hook_ = false;
  Napi::Env::CleanupHook<void (*)(Capture*), Capture> cleanup_;
};

// The event layout as this build sees it; TypeScript checks its decoder against it.
Napi::Object Layout(Napi::Env env) {
  Napi::Object l = Napi::Object::New(env);
  Napi::Object f = Napi::Object::New(env);
#define FIELD(name)                                                          \
  do {                                                                       \
    Napi::Object d = Napi::Object::New(env);                                 \
    d.Set("offset", offsetof(struct pbe_event, name));                       \
    d.Set("size", sizeof(((struct pbe_event*)nullptr)->name));               \
    f.Set(#name, d);                                                         \
  } while (0)
  FIELD(ts_ns); FIELD(enter_ns); FIELD(cgroup_id); FIELD(sock_id); FIELD(tgid); FIELD(tid);
  FIELD(ppid); FIELD(uid); FIELD(len); FIELD(cap_len); FIELD(seq); FIELD(fd); FIELD(saddr);
  FIELD(daddr); FIELD(sport); FIELD(dport); FIELD(kind); FIELD(dir); FIELD(family);
  FIELD(source); FIELD(comm); FIELD(netns); FIELD(tail_len);
#undef FIELD
  l.Set("fields", f);
  l.Set("headerSize", sizeof(struct pbe_event));
  l.Set("payloadLimit", PBE_PAYLOAD_LIMIT);
  l.Set("payloadDefault", PBE_PAYLOAD_DEFAULT);
  l.Set("tailLimit", PBE_TAIL_LIMIT);
  l.Set("inferEvents", PBE_INFER_EVENTS);
  Napi::Object verdicts = Napi::Object::New(env);
  verdicts.Set("track", static_cast<uint32_t>(PBE_VERDICT_TRACK));
  verdicts.Set("ignore", static_cast<uint32_t>(PBE_VERDICT_IGNORE));
  verdicts.Set("shadow", static_cast<uint32_t>(PBE_VERDICT_SHADOW));
  l.Set("verdicts", verdicts);
  l.Set("counterCount", static_cast<uint32_t>(PBE_CNT__MAX));
  return l;
}

// probe() -> what this kernel lets libbpf load: 1 yes, 0 no, <0 -errno of the probe.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  libbpf_set_print(LibbpfPrint);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ringbuf", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr));
  o.Set("tracepoint", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, nullptr));
  o.Set("rawTracepoint", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, nullptr));
  o.Set("kprobeProgram", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, nullptr));
  o.Set("tracing", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACING, nullptr));
  o.Set("socketFilter", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCKET_FILTER, nullptr));
  return o;
}

// setSchedIdle(tid) -> 0, or the errno of sched_setscheduler(tid, SCHED_IDLE).
// Under SCHED_IDLE a thread runs only on CPU no other task wants, and a waking
// normal task always preempts it; threads it starts later inherit the policy.
Napi::Value SetSchedIdle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "setSchedIdle(tid: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const pid_t tid = static_cast<pid_t>(info[0].As<Napi::Number>().Int32Value());
  struct sched_param param {};
  param.sched_priority = 0;
  const int rc = sched_setscheduler(tid, SCHED_IDLE, &param);
  return Napi::Number::New(env, rc == 0 ? 0 : errno);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("setSchedIdle", Napi::Function::New(env, SetSchedIdle));
  exports.Set("yieldIfIdle", Napi::Function::New(env, pbe::YieldIfIdleCall));
  exports.Set("Capture", Capture::Init(env));
  exports.Set("layout", Layout(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(pbe_capture, Init)
