"""The `harness` command line: thin click commands that parse options and call the library.

`main` holds the group and the run commands (train, eval, compare, reproduce, sweep, report),
`browse` the commands that list, build and show (tasks, methods, data, view), `checks` the probe,
verify and models commands, `options` the options they share. The top layer: it may import
everything, nothing imports it.
"""
