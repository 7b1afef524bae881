"""What a sweep's driver imports, seen from a fresh interpreter (a subprocess)."""

import subprocess
import sys


def test_a_sweep_of_svms_only_imports_no_torch_in_the_driver(tmp_path):
    # q1b's driver spent 5 s of 2 cores importing torch for nothing a trial used
    code = (
        "import sys\n"
        "from tune_mnist.train.checks import model_costs\n"
        "from tune_mnist.store.provenance import provenance\n"
        "from tune_mnist.spec.spaces import load_space\n"
        "record = provenance(with_torch=False)\n"
        "assert model_costs(load_space('q1b'), {}) == {}\n"
        "print('torch' in sys.modules, record['driver_devices'], record['machine']['gpu'],"
        " record['machine']['cpu']['torch_threads'], bool(record['machine']['cpu']['model']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "None", "None", "None", "True"]
