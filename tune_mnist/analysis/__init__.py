"""From an experiment's files to a report: tables, statistics, the study beside the run,
effects of a design, timing, figures, HTML. Reads folders; never starts Ray."""
