"""Report rendering: summary.json, junit.xml and a self-contained report.html."""
