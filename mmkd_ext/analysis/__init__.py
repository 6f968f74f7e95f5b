"""Analyses run on a distillation config before (or after) distilling."""
from .teacher_diagnostics import (DiagnosticsInputError, check_distiller_config,
                                  diagnose_teachers, format_markdown, plot_diagnostics,
                                  sample_statistics, write_report)

__all__ = ['DiagnosticsInputError', 'check_distiller_config', 'diagnose_teachers',
           'format_markdown', 'plot_diagnostics', 'sample_statistics', 'write_report']
