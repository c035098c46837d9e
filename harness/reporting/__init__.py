"""From complete runs to what a reader sees: tables, figures, REPORT.md and task descriptions.

`report` writes the claim tests and REPORT.md, `plots` the paper-style figures, `describe` the
`harness tasks show` text. May import everything below it (core to evaluation), never
running or cli.
"""
