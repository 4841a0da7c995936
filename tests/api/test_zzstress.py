import subprocess, time, os, threading
from tests.support.api import create, definition, new_project, run, script_step, wait_state
def test_stress(api, worker):
    project = new_project()
    create(api, project, definition("lines", [script_step("for i in 1 2 3 4 5; do echo line $i; done; echo err >&2")]))
    for n in range(1, 21):
        t=time.time()
        run(api, project, "lines")
        print("run", n, round(time.time()-t,2), flush=True)
    for n in range(1, 21):
        t=time.time()
        wait_state(api, project, f"lines-{n}", timeout=300)
        print("done", n, round(time.time()-t,2), flush=True)
