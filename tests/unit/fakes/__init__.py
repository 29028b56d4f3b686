"""A small fake feature for unit tests of the orchestrator: a stack, a fault and a user class.

- `stack`: `FakeSpec`/`FakeStack`, real processes (an HTTP server, its replicas, a dependency)
  that can be told to crash, hang, fail inference or be slow;
- `faults`: `MarkerFault`, a fault whose effect is a file, that can fail at each step;
- `user`: `FakeUser`, the load's user class, POSTing to the fake's `/infer`;
- `journal`: reading a journal back while the run goes.
"""
