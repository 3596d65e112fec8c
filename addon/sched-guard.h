// The agent under SCHED_IDLE while it keeps up, at normal priority while it
// falls behind (sched_idle: auto). Under SCHED_IDLE the agent never takes the
// CPU from a traced application (lower latency added to them), but on a
// saturated host it gets almost no CPU and the ring buffer would overflow.
// A thread of its own, at normal priority, looks at how full the ring buffer
// is every kPeriodMs (the producer and consumer positions, mapped read-only
// from the ring buffer map; while it stays empty, the looks space out up to
// kIdlePeriodMs): past `high` bytes, or when data has waited
// kStarvedMs with nothing read, every other thread of the process goes back
// to SCHED_OTHER; once the ring has stayed below `low`
// bytes for `hold_ms`, SCHED_IDLE again. A watcher that sleeps 10 ms and reads
// two words costs nothing measurable, and it wakes even when the CPUs are
// saturated, long before a ring of megabytes fills.
// The time at normal priority has a budget, in CPU time of the agent: a bucket
// of `burst_ms` that refills at `share` of one CPU. Each look while at normal
// priority and behind (the ring buffer above `low`) costs the CPU the agent
// used since the last one, or the time that passed if that is more: a second
// there costs a CPU-second at least, the CPU it had the right to take. Crowded
// by many runnable tasks the agent gets less than a CPU, yet each of its
// wake-ups still preempts them: charged by CPU alone, an agent behind
// PostgreSQL at saturation spent 1.4-2.7 s of each 6 s at normal priority on a
// 0.5 CPU-s refill, and PostgreSQL kept 0.716 of the floor's speed (0.883
// charged so). Caught up, it waits out `hold_ms` at normal priority, asleep:
// that costs only the CPU it uses.
// A burst of load is taken at normal priority until the bucket is empty; a
// host saturated for longer then gets its CPU back (SCHED_IDLE again, the ring
// buffer left to overflow: the kernel drops and counts). It is raised again
// only once it has caught up under SCHED_IDLE by itself (the ring buffer down
// to `low`: the saturation is over) and the bucket holds a quarter of
// `burst_ms`: a host that stays saturated keeps its CPU. (Raised again each
// time a quarter came back, ~0.56 s every ~5 s, the agent cost PostgreSQL at
// saturation ~10% of its speed, 0.892 of the floor's against 1.002, for a
// completeness of 0.139 against 0.063.) Over time the agent spends at most
// `share` of the time at normal priority behind, and takes at most `share` of
// a CPU there.
#ifndef PBE_SCHED_GUARD_H
#define PBE_SCHED_GUARD_H

#include <napi.h>
#include <dirent.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <mutex>
#include <thread>

namespace pbe {

class SchedGuard {
 public:
  static constexpr int kPeriodMs = 10;
  // While the ring buffer is empty at each look (and the agent is not raised) the
  // period doubles up to this; data seen brings it back to kPeriodMs. Each wake-up
  // costs ~50 µs of CPU on a VM (the idle agent's watcher: 5 ms/s at 100 looks/s).
  // A load that starts meanwhile is seen up to 80 ms late: with the default 16 MiB
  // ring, it passes `high` (an eighth) in that time only above 25 MB/s of events, and
  // fills the ring only above 200 MB/s (what overflows then is counted by the kernel).
  // Starvation is counted from the first look that sees data.
  static constexpr int kIdlePeriodMs = 80;
  // Data waiting this long without the agent reading any is starvation too: the
  // agent's lag (and what it learns late from /proc) stays bounded at low rates.
  static constexpr uint64_t kStarvedMs = 100;

  struct Stats {
    bool boosted;        // the agent is at normal priority now
    uint64_t boosts;     // times it went back to normal priority
    uint64_t boosted_ms; // time spent at normal priority (the current stretch included)
    uint64_t throttles;  // times the budget ran out while at normal priority
    bool held;           // the budget ran out and the agent has not caught up since: not raised meanwhile
    double budget_ms;    // ms left in the budget now (CPU ms, or ms at normal priority when more)
    int last_errno;      // the last sched_setscheduler failure (0: none)
  };

  struct Options {
    uint64_t high;     // ring buffer bytes from which the agent goes to normal priority
    uint64_t low;      // bytes under which it may go back to SCHED_IDLE...
    uint64_t hold_ms;  // ...once it stayed there this long
    double share;      // the budget's refill: this share of one CPU
    double burst_ms;   // the budget's size: CPU ms (at least as many ms) at normal priority in one go
  };

  SchedGuard() = default;
  SchedGuard(const SchedGuard&) = delete;
  SchedGuard& operator=(const SchedGuard&) = delete;
  ~SchedGuard() { Stop(); }

  // Watch the ring buffer map `map_fd` (a BPF_MAP_TYPE_RINGBUF). Returns 0 or -errno.
  int Start(int map_fd, const Options& o) {
    if (thread_.joinable()) return -EBUSY;
    // leaving SCHED_IDLE needs CAP_SYS_NICE (or RLIMIT_NICE): tried first on a
    // thread of its own, so a refusal leaves nothing idle that could not come back
    int refused = 0;
    std::thread probe([&refused] {
      struct sched_param param {};
      if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) refused = errno;
      else if (sched_setscheduler(0, SCHED_OTHER, &param) != 0) refused = errno;
    });
    probe.join();
    if (refused) return -refused;
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    // consumer position (page 0) and producer position (page 1), read-only
    void* m = mmap(nullptr, 2 * page_, PROT_READ, MAP_SHARED, map_fd, 0);
    if (m == MAP_FAILED) return -errno;
    positions_ = m;
    opt_ = o;
    budget_ms_ = o.burst_ms;
    held_ = false;
    stop_ = false;
    boosted_ = false;
    // started at this thread's (normal) priority; it then puts every other thread
    // under SCHED_IDLE (threads started later inherit it from whoever starts them)
    thread_ = std::thread([this] { Run(); });
    return 0;
  }

  // Back to normal priority (a stopping agent drains what is left quickly), thread joined. Idempotent.
  void Stop() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      thread_.join();
      Apply(SCHED_OTHER, 0);
      if (boosted_.exchange(false)) boosted_total_ms_ += NowMs() - boosted_since_ms_;
    }
    if (positions_) {
      munmap(positions_, 2 * page_);
      positions_ = nullptr;
    }
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    const bool boosted = boosted_.load();
    uint64_t ms = boosted_total_ms_;
    if (boosted) ms += NowMs() - boosted_since_ms_;
    return Stats{boosted, boosts_, ms, throttles_, held_, budget_ms_, last_errno_};
  }

 private:
  static uint64_t NowMs() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
  }

  // CPU time of the whole process (every thread), ms.
  static double ProcessCpuMs() {
    struct timespec ts {};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
  }

  // The ring buffer's positions: the consumer's on the first mapped page, the producer's on the second.
  uint64_t Consumer() const { return __atomic_load_n(static_cast<const volatile uint64_t*>(positions_), __ATOMIC_ACQUIRE); }
  uint64_t Producer() const {
    return __atomic_load_n(reinterpret_cast<const volatile uint64_t*>(static_cast<const char*>(positions_) + page_), __ATOMIC_ACQUIRE);
  }

  // `policy` for every thread of this process but `except` (a tid, or 0).
  void Apply(int policy, pid_t except) {
    DIR* d = opendir("/proc/self/task");
    if (!d) {
      last_errno_ = errno;
      return;
    }
    struct sched_param param {};
    param.sched_priority = 0;
    while (struct dirent* e = readdir(d)) {
      const pid_t tid = static_cast<pid_t>(strtol(e->d_name, nullptr, 10));
      if (tid <= 0 || tid == except) continue;
      // ESRCH: the thread ended meanwhile
      if (sched_setscheduler(tid, policy, &param) != 0 && errno != ESRCH) last_errno_ = errno;
    }
    closedir(d);
  }

  void Run() {
    const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    std::unique_lock<std::mutex> lock(mu_);
    Apply(SCHED_IDLE, self);
    uint64_t low_since = 0;
    uint64_t last_reapply = NowMs();
    uint64_t last_consumer = Consumer();
    uint64_t waiting_since = 0;  // data waits and the consumer has not moved since
    uint64_t last_now = NowMs();
    double last_cpu = ProcessCpuMs();
    int period_ms = kPeriodMs;
    while (!cv_.wait_for(lock, std::chrono::milliseconds(period_ms), [this] { return stop_; })) {
      const uint64_t consumer = Consumer();
      const uint64_t producer = Producer();
      const uint64_t fill = producer > consumer ? producer - consumer : 0;
      const uint64_t now = NowMs();
      // the budget: what the agent used at normal priority since the last look (at
      // least the time that passed while it was behind), and the refill
      const double cpu = ProcessCpuMs();
      if (boosted_) budget_ms_ -= fill > opt_.low ? std::max(cpu - last_cpu, static_cast<double>(now - last_now)) : cpu - last_cpu;
      budget_ms_ = std::min(opt_.burst_ms, budget_ms_ + opt_.share * static_cast<double>(now - last_now));
      last_cpu = cpu;
      last_now = now;
      if (fill == 0) waiting_since = 0;
      else if (waiting_since == 0 || consumer != last_consumer) waiting_since = now;
      last_consumer = consumer;
      const bool starved = waiting_since != 0 && now - waiting_since >= kStarvedMs;
      // caught up under SCHED_IDLE after the budget ran out: the saturation is over
      if (held_ && fill <= opt_.low) held_ = false;
      if (!boosted_) {
        if ((fill >= opt_.high || starved) && !held_ && budget_ms_ >= opt_.burst_ms / 4) {
          Apply(SCHED_OTHER, self);
          boosted_ = true;
          boosts_++;
          boosted_since_ms_ = now;
          low_since = 0;
        } else if (now - last_reapply >= 1000) {
          // threads started by one that was boosted when it started them
          Apply(SCHED_IDLE, self);
          last_reapply = now;
        }
      } else if (budget_ms_ <= 0) {
        // spent: the applications get their CPU back, the kernel drops what is not drained
        Apply(SCHED_IDLE, self);
        boosted_ = false;
        throttles_++;
        held_ = true;
        boosted_total_ms_ += now - boosted_since_ms_;
        last_reapply = now;
      } else if (fill > opt_.low) {
        low_since = 0;
      } else if (low_since == 0) {
        low_since = now;
      } else if (now - low_since >= opt_.hold_ms) {
        Apply(SCHED_IDLE, self);
        boosted_ = false;
        boosted_total_ms_ += now - boosted_since_ms_;
        last_reapply = now;
      }
      period_ms = fill == 0 && !boosted_ ? std::min(period_ms * 2, kIdlePeriodMs) : kPeriodMs;
    }
  }

  void* positions_ = nullptr;
  size_t page_ = 4096;
  Options opt_{};
  double budget_ms_ = 0;  // under mu_ (the watcher holds it except while it sleeps)
  uint64_t throttles_ = 0;
  bool held_ = false;  // under mu_
  std::thread thread_;
  std::mutex mu_;  // stop_, the counters (the watcher holds it except while it sleeps)
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> boosted_{false};
  uint64_t boosts_ = 0;
  uint64_t boosted_since_ms_ = 0;
  uint64_t boosted_total_ms_ = 0;
  int last_errno_ = 0;
};

// The JavaScript side, shared by capture.cc and packet.cc:
// guardSched({ highBytes, lowBytes, holdMs, boostShare, burstMs }) starts `guard` on the ring buffer map_fd.
inline Napi::Value GuardSchedCall(const Napi::CallbackInfo& info, SchedGuard& guard, int map_fd) {
  Napi::Env env = info.Env();
  const char* usage = "guardSched({ highBytes, lowBytes, holdMs, boostShare, burstMs }: numbers, boostShare and burstMs above 0)";
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  double v[5];
  const char* keys[5] = {"highBytes", "lowBytes", "holdMs", "boostShare", "burstMs"};
  for (int i = 0; i < 5; i++) {
    Napi::Value x = o.Get(keys[i]);
    const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
    // NaN fails both; the budget's share and size must be above 0
    if (!(i < 3 ? d >= 0 : d > 0)) {
      Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    v[i] = d;
  }
  SchedGuard::Options opts{static_cast<uint64_t>(v[0]), static_cast<uint64_t>(v[1]), static_cast<uint64_t>(v[2]), v[3], v[4]};
  const int err = guard.Start(map_fd, opts);
  if (err) Napi::Error::New(env, std::string("watch the ring buffer for sched_idle auto: ") + strerror(-err)).ThrowAsJavaScriptException();
  return env.Undefined();
}

// yieldIfIdle() -> whether the calling thread is under SCHED_IDLE, in which case
// it has just called sched_yield. Called by the drain's JavaScript every ~100 µs of
// work (src/capture/slices.ts). On the VM these figures come from, a task that
// wants a CPU where a SCHED_IDLE task runs in user space waits for much of that
// run (bench/tail-cost, 2026-12-08, pgbench's p99 at 2,000 tps over untraced): the
// capture floor spinning 500 µs under SCHED_IDLE every 5 ms ×1.16, the same in
// 100 µs pieces with a sched_yield between ×0.98, the same CPU in 2 ms runs ×1.77.
// At normal priority a yield would hand the CPU to the tasks the agent is behind:
// not done then.
inline Napi::Value YieldIfIdleCall(const Napi::CallbackInfo& info) {
  const bool idle = sched_getscheduler(0) == SCHED_IDLE;
  if (idle) sched_yield();
  return Napi::Boolean::New(info.Env(), idle);
}

// schedGuard() -> { boosted, boosts, boostedMs, throttles, held, budgetMs, lastErrno }
inline Napi::Value SchedGuardStats(Napi::Env env, SchedGuard& guard) {
  const SchedGuard::Stats s = guard.stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("boosted", s.boosted);
  o.Set("boosts", static_cast<double>(s.boosts));
  o.Set("boostedMs", static_cast<double>(s.boosted_ms));
  o.Set("throttles", static_cast<double>(s.throttles));
  o.Set("held", s.held);
  o.Set("budgetMs", s.budget_ms);
  o.Set("lastErrno", s.last_errno);
  return o;
}

}  // namespace pbe

#endif  // PBE_SCHED_GUARD_H
