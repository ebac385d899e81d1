"""Retrospective audit (`kmg audit`): how often potassium was repleted without magnesium.

One streaming replay pass over historical feeds, through the same engine as the live service:
per-episode facts (episodes), summary figures (figures), inline SVG charts (charts), the HTML
report (report: its sections over all episodes in overall_sections, by month and location in
group_sections, the data and configuration in provenance; its figures written by report_cells,
its names and colours in legend), and the command that ties them together (run).
"""
