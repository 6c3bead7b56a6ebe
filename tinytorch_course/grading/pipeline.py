"""The nbgrader preprocessor lists, in the order a submission meets them (imported by nbgrader_config.py).

nbgrader's Autograde.sanitize_preprocessors, then its autograde_preprocessors split in two: what a
grading worker runs (execute in the sandbox, judge, no gradebook writes) and what only the single
writer runs (record the judged grades, then make the stored notebook inert: formgrader shows it). Then
what feedback runs, and the exporter that writes its page (inert, with a Content-Security-Policy).
"""

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
)

from .preprocessors import (
    DrawHiddenInputs,
    HideHiddenTests,
    Judge,
    RestoreMissingCells,
    RobustExecute,
    SaveJudgedGrades,
)
from .sanitize import InertHTMLExporter, MakeInert

SANITIZE = [ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreMissingCells, OverwriteCells, CheckCellMetadata]
EXECUTE = [DrawHiddenInputs, RobustExecute, IgnorePattern, ClearMetadataPreprocessor, Judge, LimitOutput]
RECORD = [SaveJudgedGrades, AssignLatePenalties, CheckCellMetadata, MakeInert]
FEEDBACK = [GetGrades, HideHiddenTests, MakeInert, CSSHTMLHeaderPreprocessor]
FEEDBACK_PAGE = InertHTMLExporter
