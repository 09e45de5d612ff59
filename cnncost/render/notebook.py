"""Every result as a notebook shows it: the page the result's command writes with
``--format html`` (``analyze``, ``compare``, ``sweep``, ``advise``, ``bench``, ``bench
--train``, ``predict``, ``bench --predict``), as a fragment (cnncost.render.html.fragment:
its style scoped to it, no script), registered by class name in cnncost.display.HTML, the
registry a result's ``_repr_html_`` reads. Nothing is imported until a result is drawn (the
benchmarks' modules import torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnncost.display import shows
from cnncost.render.html import fragment

if TYPE_CHECKING:
    from cnncost.advise.engine import Advice
    from cnncost.compare import Comparison
    from cnncost.measure.bench import BenchReport
    from cnncost.measure.bench_train import TrainBenchReport
    from cnncost.predict.model import Prediction
    from cnncost.predict.versus import Versus
    from cnncost.sweep import Sweep
    from cnncost.table import CostTable


@shows("cnncost.table.CostTable")
def table_html(table: CostTable) -> str:
    from cnncost.render.cost import table_page

    return table_page(table, wrap=fragment)


@shows("cnncost.compare.Comparison")
def compare_html(comparison: Comparison) -> str:
    from cnncost.render.compare import compare_page

    return compare_page(comparison, wrap=fragment)


@shows("cnncost.sweep.Sweep")
def sweep_html(sweep: Sweep) -> str:
    from cnncost.render.sweep import sweep_page

    return sweep_page(sweep, wrap=fragment)


@shows("cnncost.advise.engine.Advice")
def advice_html(advice: Advice) -> str:
    from cnncost.render.advice import advice_page

    return advice_page(advice, wrap=fragment)


@shows("cnncost.measure.bench.BenchReport")
def bench_html(report: BenchReport) -> str:
    from cnncost.render.bench import bench_page

    return bench_page(report, wrap=fragment)


@shows("cnncost.measure.bench_train.TrainBenchReport")
def train_bench_html(report: TrainBenchReport) -> str:
    from cnncost.render.bench_train import train_page

    return train_page(report, wrap=fragment)


@shows("cnncost.predict.model.Prediction")
def prediction_html(prediction: Prediction) -> str:
    from cnncost.render.predict import prediction_page

    return prediction_page(prediction, wrap=fragment)


@shows("cnncost.predict.versus.Versus")
def versus_html(versus: Versus) -> str:
    from cnncost.render.predict import versus_page

    return versus_page(versus, wrap=fragment)
