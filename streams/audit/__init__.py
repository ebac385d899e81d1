"""Retrospective audit (`kmg audit`): how often potassium was repleted without magnesium.

One streaming replay pass over historical feeds, through the same engine as the live service:
per-episode facts (episodes), summary figures (figures), inline SVG charts (charts), the HTML
report (report), and the command that ties them together (run).
"""
