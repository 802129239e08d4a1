"""scikit-learn stays optional for xpnet itself: `import xpnet` (and the command line) never loads it, and without it
`import xpnet.sklearn` says in one line what to install."""
import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_xpnet_imports_without_scikit_learn():
    proc = _run("import sys; sys.modules['sklearn'] = None\n"  # as if it were not installed
                "import xpnet, xpnet.cli.app\n"
                "try:\n    import xpnet.sklearn\nexcept ImportError as exc:\n    print(exc)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("xpnet.sklearn needs scikit-learn 1.6 or later") and 'xpnet[sklearn]' in proc.stdout


def test_import_xpnet_does_not_load_scikit_learn():
    proc = _run("import sys, xpnet; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
