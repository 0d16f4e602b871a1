"""training/hf_compat_gpu.py runs on a GPU machine with transformers; here it must at least import,
answer --help and refuse clearly without transformers, and its CPU-side helpers must work."""

import os
import subprocess
import sys

import hf_compat_gpu
from tokens import read_data_dir

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hf_compat_gpu.py")


def test_help_works_without_importing_transformers():
    code = "import runpy, sys; sys.argv = ['hf_compat_gpu.py', '--help']\n" \
           "try:\n    runpy.run_path(%r, run_name='__main__')\nexcept SystemExit as e:\n" \
           "    assert e.code == 0, e.code\nassert 'transformers' not in sys.modules\n" % SCRIPT
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--work" in proc.stdout and "--steps" in proc.stdout and "gpt2-xl" in proc.stdout


def test_without_transformers_it_says_what_is_missing(tmp_path, capsys, monkeypatch):
    # A None entry makes `import transformers` fail whether or not it is installed here.
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert hf_compat_gpu.main(["--work", str(tmp_path)]) == 2
    assert "needs Hugging Face transformers" in capsys.readouterr().err


def test_random_data_and_throughput_parsing(tmp_path):
    hf_compat_gpu.write_random_data(str(tmp_path), train_tokens=2100, eval_tokens=420)
    data = read_data_dir(str(tmp_path))
    assert len(data["train"]) == 2100 and data["train"].tags == hf_compat_gpu.TAGS
    assert int(data["train"].ids[20]) == 50256
    lines = ["step 5/30 | loss 10.9 (avg 10.9) | lr 1.0e-04 | 1,000 tok/s", "step 10/30 | loss 10.8 (avg 10.8) | lr 1.0e-04 | 3,000 tok/s",
             "step 15/30 | loss 10.8 (avg 10.8) | lr 1.0e-04 | 5,000 tok/s", "step 15/30 | eval loss 10.8 | ppl 49000.00"]
    assert hf_compat_gpu.steady_tokens_per_second(lines) == 4000.0
