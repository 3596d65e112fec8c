// Signals held off this thread for a scope. The kernel's BPF verifier gives up
// with EAGAIN when a signal is pending on the loading thread (libbpf retries a
// few times), so a steady stream of signals, such as the SIGPROF ticks of
// `node --cpu-prof`, would make every load fail. Held signals are delivered
// when the scope ends; process-wide ones (SIGINT, SIGTERM) go to another thread
// meanwhile, where Node's handlers see them as usual.
#ifndef PBE_SIGNALS_HELD_H
#define PBE_SIGNALS_HELD_H

#include <pthread.h>
#include <signal.h>

namespace pbe {

class SignalsHeld {
 public:
  SignalsHeld() {
    sigset_t all;
    sigfillset(&all);
    held_ = pthread_sigmask(SIG_BLOCK, &all, &previous_) == 0;
  }
  ~SignalsHeld() {
    if (held_) pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t previous_;
  bool held_ = false;
};

}  // namespace pbe

#endif
