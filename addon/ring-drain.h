// Drain of a BPF ring buffer into JavaScript in batches, on the libuv loop:
// one JS call per batch (records back to back in one Buffer), woken by the
// ring buffer's epoll fd and by an adaptive timer (soon again while records
// keep coming, backing off to the idle interval). Owned by capture.cc's
// Capture and packet.cc's PacketCapture.
#ifndef PBE_RING_DRAIN_H
#define PBE_RING_DRAIN_H

#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <bpf/libbpf.h>
}

namespace pbe {

class RingDrain {
 public:
  // Bytes of one record as its header says (never more than `size`); 0 skips it.
  using RecordSize = size_t (*)(const void* data, size_t size);

  // Batches handed to JavaScript stop growing past this many bytes.
  static constexpr size_t kBatchBytes = 1024 * 1024;
  // Full batches handed over per wake-up before the event loop gets a turn.
  static constexpr int kBatchesPerTurn = 2;

  RingDrain() = default;
  RingDrain(const RingDrain&) = delete;
  RingDrain& operator=(const RingDrain&) = delete;
  ~RingDrain() { Stop(); }

  bool started() const { return rb_ != nullptr; }
  // Space the drains out while records only trickle in (OnTimer). Not for the
  // packet capture, which names a connection's processes from /proc as it reads
  // its packets: a client gone meanwhile could no longer be named.
  void SpaceTrickle(bool on) { trickle_rate_ = on ? kTrickleRate : 0; }
  // Records taken from the ring buffer since Start (the kernel counts those it wrote).
  uint64_t records() const { return records_; }

  // Start draining map_fd's ring buffer into on_batch(buffer), called on recv.
  // Returns 0 or -errno (nothing started).
  int Start(Napi::Env env, Napi::Object recv, Napi::Function on_batch, int map_fd, RecordSize record_size,
            uint32_t interval_ms, uint32_t min_interval_ms) {
    if (rb_) return -EBUSY;
    rb_ = ring_buffer__new(map_fd, OnSample, this, nullptr);
    if (!rb_) return -errno;
    env_ = env;
    recv_ = Napi::Persistent(recv);
    on_batch_ = Napi::Persistent(on_batch);
    record_size_ = record_size;
    min_interval_ = std::max<uint32_t>(1, min_interval_ms);
    interval_ = std::max<uint32_t>(min_interval_, interval_ms);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    timer_ = new uv_timer_t;
    uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
    poll_->data = this;
    uv_timer_init(loop, timer_);
    timer_->data = this;
    if (!paused_) Watch();
    return 0;
  }

  // start(onBatch, intervalMs, minIntervalMs?) as JavaScript calls it: a TypeError for
  // bad arguments, an Error "<what> already started" when it is; otherwise Start's
  // result (0, or -errno for the caller's own error, which carries libbpf's log).
  int StartFromJs(const Napi::CallbackInfo& info, Napi::Object recv, int map_fd, RecordSize record_size, const char* what) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "start expects (onBatch, intervalMs)").ThrowAsJavaScriptException();
      return 0;
    }
    const uint32_t interval = info[1].As<Napi::Number>().Uint32Value();
    const uint32_t min_interval = info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 1;
    const int err = Start(env, recv, info[0].As<Napi::Function>(), map_fd, record_size, interval, min_interval);
    if (err == -EBUSY) {
      Napi::Error::New(env, std::string(what) + " already started").ThrowAsJavaScriptException();
      return 0;
    }
    return err;
  }

  // Stop draining (backpressure: the ring buffer holds, then the kernel counts drops).
  void Pause() {
    if (poll_ && !paused_) {
      uv_poll_stop(poll_);
      uv_timer_stop(timer_);
    }
    paused_ = true;
  }

  void Resume() {
    if (poll_ && paused_) {
      paused_ = false;
      Watch();
    }
    paused_ = false;
  }

  // Consume what is in the ring buffer now, a turn's worth. Never throws into
  // libuv. Returns whether anything was handed over.
  bool Drain(int turns = kBatchesPerTurn, bool despite_pause = false) {
    if (!rb_ || draining_) return false;
    draining_ = true;
    bool got = false;
    for (int turn = 0; turn < turns; turn++) {
      int r = ring_buffer__consume(rb_);
      last_full_ = r == kBatchFull;
      if (!batch_.empty()) {
        got = true;
        Napi::HandleScope scope(env_);
        Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env_, batch_.data(), batch_.size());
        batch_.clear();
        on_batch_.MakeCallback(recv_.Value(), {buf});
        if (env_.IsExceptionPending()) {
          Napi::Error err = env_.GetAndClearPendingException();
          napi_fatal_exception(env_, err.Value());
          break;
        }
      }
      if (r != kBatchFull || !rb_ || (paused_ && !despite_pause)) break;
    }
    draining_ = false;
    return got;
  }

  // Everything in the ring buffer (until a consume comes back short of a full
  // batch), whatever the pause, for up to budget_ns: the last drain before
  // closing. True when emptied.
  bool DrainAll(uint64_t budget_ns) {
    if (draining_) return false;
    const uint64_t until = uv_hrtime() + budget_ns;
    while (rb_) {
      bool got = Drain(1, true);
      if (!got || !last_full_) return true;
      if (uv_hrtime() >= until) return false;
    }
    return false;
  }

  // Handles, reader and references. Idempotent.
  void Stop() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (timer_) {
      uv_timer_stop(timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      timer_ = nullptr;
    }
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
    if (!on_batch_.IsEmpty()) on_batch_.Reset();
    if (!recv_.IsEmpty()) recv_.Reset();
    batch_.clear();
  }

 private:
  // Sentinel returned by the sample callback when the batch is full.
  static constexpr int kBatchFull = -ENOSPC;

  void Watch() {
    uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<RingDrain*>(h->data)->Drain(); });
    next_ms_ = min_interval_;
    timer_records_ = records_;
    uv_timer_start(timer_, OnTimer, next_ms_, 0);
  }

  // Adaptive drain: soon again while records keep coming, backing off when idle,
  // and spaced out while they only trickle in. Below kTrickleRate records a second
  // (~400 HTTP requests/s) the next drain waits as long as kTargetRecords take to
  // come at the rate the last one saw (up to the idle interval); at or above it,
  // the shortest interval as before. Each wake-up has a cost of its own (on the
  // VM these figures come from, its TLB and caches cold after the sleep: ~100-150
  // µs of the main thread's CPU against ~15 µs of work per HTTP transaction), which
  // at low rates was most of the agent's CPU: a wake-up every 5 ms for a handful of
  // records. Measured (bench/live-ab --jitter, 6 pairs, HTTP requests arriving at
  // random): at ~317 requests/s agent CPU ×0.563 [0.501, 0.633], wrk's p99 ×0.939
  // [0.827, 1.066]; at ~395, the rate itself (10 pairs), ×0.649 [0.598, 0.714] and
  // ×0.965 [0.898, 1.038]; at ~1,580, above it, nothing changes (×0.916 [0.737,
  // 1.094], p99 ×1.018 [0.852, 1.198]). Not above it: spacing drains by batch size
  // alone (doubling below 32 records) spaced them at ~1,580 requests/s too (30
  // records in 5 ms), and there wrk's p99 rose ×1.172 [1.075, 1.268] for no less
  // agent CPU (×1.053 [0.892, 1.168]).
  static constexpr double kTrickleRate = 1600;
  static constexpr double kTargetRecords = 32;

  static void OnTimer(uv_timer_t* h) {
    RingDrain* self = static_cast<RingDrain*>(h->data);
    self->Drain();
    if (!self->timer_ || self->paused_) return;
    // what came since the last timer, the ring buffer's wake-ups' drains included
    const uint64_t records = self->records_ - self->timer_records_;
    self->timer_records_ = self->records_;
    self->next_ms_ = NextInterval(records, self->next_ms_, self->min_interval_, self->interval_, self->trickle_rate_);
    uv_timer_start(self->timer_, OnTimer, self->next_ms_, 0);
  }

  // The next drain's delay after `records` came over `last_ms` (see OnTimer); below
  // `trickle_rate` records a second the drains space out (0: never).
  static uint64_t NextInterval(uint64_t records, uint64_t last_ms, uint64_t min_ms, uint64_t max_ms, double trickle_rate) {
    if (records == 0) return std::min<uint64_t>(std::max<uint64_t>(min_ms, last_ms * 2), max_ms);
    const double rate = static_cast<double>(records) * 1000.0 / static_cast<double>(std::max<uint64_t>(1, last_ms));
    if (rate >= trickle_rate) return min_ms;
    const double ms = kTargetRecords * 1000.0 / rate;
    return std::min<uint64_t>(max_ms, std::max<uint64_t>(min_ms, static_cast<uint64_t>(ms)));
  }

  static int OnSample(void* ctx, void* data, size_t size) {
    RingDrain* self = static_cast<RingDrain*>(ctx);
    self->records_++;
    size_t n = self->record_size_(data, size);
    if (n == 0) return 0;
    if (n > size) n = size;  // never read past the record
    auto& b = self->batch_;
    size_t at = b.size();
    b.resize(at + n);
    memcpy(b.data() + at, data, n);
    return b.size() >= kBatchBytes ? kBatchFull : 0;
  }

  Napi::Env env_ = Napi::Env(nullptr);
  Napi::ObjectReference recv_;
  Napi::FunctionReference on_batch_;
  RecordSize record_size_ = nullptr;
  struct ring_buffer* rb_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::vector<uint8_t> batch_;
  bool draining_ = false;
  bool paused_ = false;
  bool last_full_ = false;  // the last consume stopped at a full batch: more may wait
  uint64_t records_ = 0;
  uint64_t interval_ = 20;     // longest drain period (idle)
  uint64_t min_interval_ = 1;  // shortest, while records keep coming
  uint64_t next_ms_ = 1;
  uint64_t timer_records_ = 0;  // records_ at the last timer's drain
  double trickle_rate_ = 0;      // records/s below which drains space out (SpaceTrickle; 0: never)
};

}  // namespace pbe

#endif  // PBE_RING_DRAIN_H
