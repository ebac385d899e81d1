"""The report's style sheet: plain, print-friendly, no web fonts."""

CSS = """
body{font-family:"DejaVu Sans","Liberation Sans",Arial,Helvetica,sans-serif;color:#1f2933;
margin:0 auto;max-width:1100px;padding:24px 28px;line-height:1.45;font-size:15px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:34px 0 8px;border-bottom:2px solid
#d9e2ec;padding-bottom:4px}h3{font-size:16px;margin:20px 0 6px}
.meta{color:#52606d;font-size:13px}.note{background:#f0f4f8;border-left:4px solid #0072B2;
padding:10px 16px;margin:16px 0}.note li{margin:3px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}.card{flex:1 1 250px;border:1px solid
#d9e2ec;border-radius:6px;padding:10px 14px}.card .v{font-size:28px;font-weight:bold}
.card .l{font-size:14px}.card .s{font-size:12px;color:#52606d}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}th,td{border:1px solid #d9e2ec;
padding:4px 8px;text-align:right;vertical-align:top}th{background:#f0f4f8}
td.t,th.t{text-align:left}td{white-space:nowrap}td.t{white-space:normal}
td.t:first-child{white-space:nowrap}
.pair{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start}
tr:nth-child(even) td{background:#fafbfc}
code{font-size:12px}.small{font-size:12px;color:#52606d}svg{display:block;margin:6px 0 4px}
"""
