"""Load generation: Locust used as a library, plus the harness's own recording and pacing."""
