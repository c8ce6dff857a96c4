"""Experiments: run specs, units, chapter configurations and plans, executors (serial, a local process pool,
Slurm) and the driver that runs a plan through one of them, resuming from the run store."""
from __future__ import annotations

from .driver import Plan, PlanIncomplete, PlanReport, execute_unit, run_plan
from .executors import EXECUTORS, Executor, ProcessExecutor, SerialExecutor, WorkerDied, make_executor
from .params import CHAPTER_PARAMETERS, PARAMETERS, ChapterConfig, ParameterError, configure, parse_list, resolve
from .plans import ItopPlan, Row, TablePlan, itop_plan, itop_replicates, itop_runs, premise_plan, select_snapshots, \
    table_plan, table_runs, ticket_unit
from .profiles import CHAPTERS, PROFILES, Deviation, Profile, get_profile
from .specs import SCHEMA, DataSpec, ExecSpec, ItopSpec, ModelSpec, PruneSpec, SamplingSpec, TrainSpec, run_key
from .units import EarlyBird, ItopDST, ItopRetrain, LTHRound, Pretrain, Sample, Shuffle, Ticket, Train, Unit

__all__ = [
    "Plan", "PlanIncomplete", "PlanReport", "execute_unit", "run_plan",
    "EXECUTORS", "Executor", "SerialExecutor", "ProcessExecutor", "WorkerDied", "make_executor",
    "CHAPTER_PARAMETERS", "PARAMETERS", "ChapterConfig", "ParameterError", "configure", "parse_list", "resolve",
    "ItopPlan", "Row", "TablePlan", "itop_plan", "itop_replicates", "itop_runs", "premise_plan", "select_snapshots",
    "table_plan", "table_runs", "ticket_unit",
    "CHAPTERS", "PROFILES", "Deviation", "Profile", "get_profile",
    "SCHEMA", "DataSpec", "ExecSpec", "ItopSpec", "ModelSpec", "PruneSpec", "SamplingSpec", "TrainSpec", "run_key",
    "EarlyBird", "ItopDST", "ItopRetrain", "LTHRound", "Pretrain", "Sample", "Shuffle", "Ticket", "Train", "Unit",
]
