"""Shared pieces of the integration tests.

Every test gets an Env: a temp dir with its own SoftHSM2 configuration and
token directory, PIN files, a dkimkeep.conf, and helpers to run the real
programs built in DKIMKEEP_BUILD_DIR.  Nothing here signs or verifies on its
own: signatures are checked by dkimpy, Mail::DKIM and opendkim.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("DKIMKEEP_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("DKIMKEEP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SOFTHSM = os.environ.get("SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
DATA = os.path.join(SOURCE, "tests", "data")

EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 0, 64, 65, 69, 75, 77, 78

# Sanitized programs on a loaded machine are several times slower: ci/test sets
# DKIMKEEP_TEST_TIME_SCALE for its sanitizer stage, and every config a test
# writes through Env.write_config gets its signing deadline (sign_timeout_ms)
# multiplied by it, so that a slow sanitized C_Sign is not taken for a hung
# token.  What the tests prove stays the same (a failover with no failed
# request).  health_interval is not scaled: it is a cadence, not a deadline,
# and the failover tests count the health checks made while a fault lasts.
# Tests never assert time.  Many tests read the config back, edit it and write
# it again: a scaled config ends with SCALED_MARK, and is never scaled twice.
TIME_SCALE = float(os.environ.get("DKIMKEEP_TEST_TIME_SCALE") or 1)
SCALED_MARK = "# sign_timeout_ms scaled by DKIMKEEP_TEST_TIME_SCALE (tests/integration/harness.py)\n"

# ci/test's sanitizer stage may give the programs the tests start other
# LeakSanitizer options than tests/integration/CMakeLists.txt fixed at
# configure time (fast unwinding: see ci/test and tests/lsan-fast.supp).
if os.environ.get("DKIMKEEP_TEST_LSAN_OPTIONS"):
    os.environ["LSAN_OPTIONS"] = os.environ["DKIMKEEP_TEST_LSAN_OPTIONS"]


WAIT = 90  # seconds one expected change may take before a test fails (wait_for's default)


def wait_for(pred, what, timeout=WAIT, step=0.1):
    """Poll pred() every step seconds until it is true; AssertionError naming what
    after timeout seconds.  A bound that ends a wait, never a timing assertion."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")


def scale_times(text, scale=None):
    """Config text with sign_timeout_ms scaled by TIME_SCALE, once: text that
    carries SCALED_MARK is returned as it is."""
    import re
    scale = TIME_SCALE if scale is None else scale
    if scale == 1 or SCALED_MARK in text:
        return text

    def ms(m):
        return f"{m.group(1)}{max(10, round(int(m.group(2)) * scale))}"
    text = re.sub(r"(?m)^(\s*sign_timeout_ms\s*=\s*)(\d+)\s*$", ms, text)
    # At the end, so that the line numbers in config errors stay those of the test's text.
    if not text:
        return text
    return text + ("" if text.endswith("\n") else "\n") + SCALED_MARK


def prog(name):
    """Path of a built program (dkimkeep, dkimkeepd, ...)."""
    for sub in ("client", "daemon", "tests/tools", "tests", "."):
        p = os.path.join(BUILD, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError(f"{name} not built in {BUILD}")


def p11fault_path():
    """Path of the fault-injecting PKCS#11 module (tests/p11fault); $P11FAULT_LIB overrides."""
    p = os.environ.get("P11FAULT_LIB") or os.path.join(BUILD, "tests", "p11fault", "p11fault.so")
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{p} not built: tests/CMakeLists.txt must add tests/p11fault "
                                "(or build it alone and set P11FAULT_LIB)")
    return p


class Env:
    """A private world for one test: SoftHSM tokens, PIN files, config."""

    def __init__(self, name="t", keep=False):
        self.dir = tempfile.mkdtemp(prefix=f"dkimkeep-{name}-")
        self.keep = keep or bool(os.environ.get("DKIMKEEP_KEEP_TMP"))
        self.tokens = os.path.join(self.dir, "tokens")
        os.mkdir(self.tokens)
        self.softhsm_conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.softhsm_conf, "w") as f:
            f.write(f"directories.tokendir = {self.tokens}\n"
                    "objectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ)
        self.env["SOFTHSM2_CONF"] = self.softhsm_conf
        self.env.pop("DKIMKEEP_CONF", None)
        self.conf = os.path.join(self.dir, "dkimkeep.conf")
        self.socket = os.path.join(self.dir, "sign.sock")
        self.procs = []

    # -- files ---------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, content, mode=0o600):
        p = self.path(name)
        with open(p, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.chmod(p, mode)
        return p

    def pin(self, name, value):
        return self.write(name, value + "\n", 0o600)

    # -- programs ------------------------------------------------------------
    def run(self, argv, input=None, check=None, timeout=120, env=None):
        """Run argv; check=N asserts the exit code is N."""
        e = dict(self.env)
        if env:
            e.update(env)
        if isinstance(input, str):
            input = input.encode()
        cp = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=e, timeout=timeout)
        if check is not None and cp.returncode != check:
            raise AssertionError(
                f"{' '.join(argv)}: exit {cp.returncode}, wanted {check}\n"
                f"stdout: {cp.stdout[:2000]!r}\nstderr: {cp.stderr.decode(errors='replace')}")
        return cp

    def cli(self, *args, input=None, check=0, conf=True, **kw):
        """Run dkimkeep with -c <this env's config>."""
        argv = [prog("dkimkeep")]
        if conf:
            argv += ["-c", self.conf]
        return self.run(argv + list(args), input=input, check=check, **kw)

    def spawn(self, argv, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.procs.append(p)
        return p

    # -- tokens --------------------------------------------------------------
    def token_section(self, name, label, module=None):
        pin = self.pin(f"{name}.pin", "1234")
        return (f"[token {name}]\nmodule = {module or SOFTHSM}\n"
                f"uri = pkcs11:token={label}\npin_file = {pin}\n\n")

    def init_token(self, name, label):
        """dkimkeep token init for the [token name] section (config must exist)."""
        so = self.pin(f"{name}.so.pin", "87654321")
        pin = self.path(f"{name}.pin")
        self.cli("token", "init", "--token", name, "--label", label,
                 "--so-pin-file", so, "--pin-file", pin)

    def write_config(self, text):
        """Write the config (its time bounds scaled by DKIMKEEP_TEST_TIME_SCALE)."""
        with open(self.conf, "w") as f:
            f.write(scale_times(text))
        return self.conf

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdout, p.stderr):
                if s:
                    s.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def has_failed(tc):
    """In a cleanup of TestCase tc: whether the test has failed or erred so far (to
    print logs only then).  unittest's _outcome.success is still True in cleanups
    on Python 3.11, so the result's lists are looked at."""
    res = getattr(getattr(tc, "_outcome", None), "result", None)
    return res is not None and any(t is tc for t, _ in res.failures + res.errors)


class EnvTestCase(unittest.TestCase):
    """A TestCase with a fresh Env per test (self.e)."""

    def setUp(self):
        self.e = Env(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.e.cleanup)

    def failed(self):
        return has_failed(self)
