"""The builder: reverse expansion, forward inference, sharded and resumable."""

from sifdata.build.expand import PlannedStep, plan_focus, reverse_expand
from sifdata.build.pipeline import BuildConfig, BuildReport, build, finalize, merge

__all__ = ["BuildConfig", "BuildReport", "PlannedStep", "build", "finalize", "merge", "plan_focus", "reverse_expand"]
