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
    uv_timer_start(timer_, OnTimer, next_ms_, 0);
  }

  // Adaptive drain: soon again while records keep coming, backing off when idle.
  static void OnTimer(uv_timer_t* h) {
    RingDrain* self = static_cast<RingDrain*>(h->data);
    bool got = self->Drain();
    if (!self->timer_ || self->paused_) return;
    self->next_ms_ = got ? self->min_interval_ : std::min<uint64_t>(self->next_ms_ * 2, self->interval_);
    uv_timer_start(self->timer_, OnTimer, self->next_ms_, 0);
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
};

}  // namespace pbe

#endif  // PBE_RING_DRAIN_H
