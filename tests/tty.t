#!/usr/bin/env python3
# tty.t: lguest on a terminal, driven through a pseudo-terminal, as TAP.
#
# With the tiny guest (tests/guest/tiny.S, which echoes one line back in
# upper case and then resets) on the real KVM path:
#   - Ctrl-A x quits with status 0, Ctrl-A Ctrl-A sends a literal Ctrl-A;
#   - the terminal's modes are exactly as before after every exit: the
#     guest rebooting, Ctrl-A x, SIGTERM, and a bad-input error.
import os, pty, select, signal, subprocess, sys, tempfile, termios, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LG = os.environ.get("LGUEST", os.path.join(TOP, "lguest"))
n = 0
failed = 0


def ok(cond, name, diag=""):
    global n, failed
    n += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, name))
    if not cond:
        failed += 1
        for line in str(diag).splitlines():
            print("#   " + line)
    sys.stdout.flush()


def run_on_pty(args, actions, timeout=60):
    """Start args with a fresh pty as stdin/stdout/stderr; actions(master, pid)
    drives it.  Returns (status, output, modes before, modes after)."""
    pid, master = pty.fork()
    if pid == 0:
        os.execv(args[0], args)
    before = termios.tcgetattr(master)
    out = bytearray()

    def read_for(seconds, until=None):
        end = time.time() + seconds
        while time.time() < end:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                if not data:
                    return
                out.extend(data)
                if until and until in out:
                    return

    actions(master, pid, read_for)
    status = None
    end = time.time() + timeout
    while time.time() < end:
        read_for(0.1)
        wpid, st = os.waitpid(pid, os.WNOHANG)
        if wpid:
            status = os.waitstatus_to_exitcode(st)
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # The pty's modes as lguest left them (the slave side keeps them).
    after = termios.tcgetattr(master)
    os.close(master)
    return status, bytes(out), before, after


def main():
    if not (os.access("/dev/kvm", os.R_OK | os.W_OK)):
        print("1..0 # SKIP no usable /dev/kvm")
        return 0
    tmp = tempfile.mkdtemp(prefix="lguest-tty.")
    tiny = os.path.join(tmp, "tiny.elf")
    subprocess.check_call(["gcc", "-nostdlib", "-static", "-no-pie",
                           "-Wl,-Ttext=0x1000000", "-Wl,-e,_start",
                           "-Wl,--build-id=none", "-o", tiny,
                           os.path.join(TOP, "tests/guest/tiny.S")])
    args = [LG, "64", tiny]

    # 1. A line typed on the terminal reaches the guest; Ctrl-A Ctrl-A is
    #    one literal Ctrl-A; the guest's reset ends lguest with 0.
    def type_line(m, pid, read_for):
        read_for(20, b"hello")
        os.write(m, b"ab\x01\x01cd\r")
    st, out, before, after = run_on_pty(args, type_line)
    ok(b"AB\x01CD" in out, "typed line echoed by the guest, Ctrl-A Ctrl-A sent one Ctrl-A", out)
    ok(st == 0, "guest reset: status 0 (got %s)" % st)
    ok(before == after, "terminal modes restored after the guest reset")

    # 2. Ctrl-A x quits while the guest waits for input.
    def quit_keys(m, pid, read_for):
        read_for(20, b"hello")
        os.write(m, b"\x01x")
    st, out, before, after = run_on_pty(args, quit_keys)
    ok(st == 0, "Ctrl-A x quits with status 0 (got %s)" % st, out)
    ok(before == after, "terminal modes restored after Ctrl-A x")

    # 3. SIGTERM while the guest waits: an orderly stop, terminal restored.
    def term(m, pid, read_for):
        read_for(20, b"hello")
        os.kill(pid, signal.SIGTERM)
    st, out, before, after = run_on_pty(args, term)
    ok(st == 128 + signal.SIGTERM, "SIGTERM: status 143 (got %s)" % st, out)
    ok(before == after, "terminal modes restored after SIGTERM")

    # 4. Raw mode is really on while the guest runs (no line buffering:
    #    a key without Enter reaches the guest at once).
    def raw_check(m, pid, read_for):
        read_for(20, b"hello")
        os.write(m, b"q")
        read_for(5, b"Q")
        os.write(m, b"\r")
    st, out, before, after = run_on_pty(args, raw_check)
    ok(b"Q" in out and st == 0, "raw mode: a single key reaches the guest without Enter", out)

    # 5. A bad-input error leaves the terminal alone too.
    st, out, before, after = run_on_pty([LG, "64", "/nonexistent-kernel"], lambda m, p, r: None)
    ok(st == 2 and before == after, "bad input on a terminal: status 2, modes untouched (got %s)" % st, out)

    print("1..%d" % n)
    return 1 if failed else 0


sys.exit(main())
