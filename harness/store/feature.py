"""The store as a feature: after a run's reports are written, record the run (harness.store.hook).

The core calls features' `after_report` hooks once `Run.execute` has written the reports (a soak's
too). Light on purpose: scenario validation discovers every feature, and this module must not
import SQLAlchemy.
"""

from harness.features import Feature
from harness.store.hook import judge_regress, record_after_report

FEATURE = Feature(name="store", after_report=record_after_report, judge_after_report=judge_regress)
