"""The `harness` command line: thin click commands that parse options and call the library.

`main` holds the group and the everyday commands, `checks` the probe, verify and models commands,
`options` the options they share. The top layer: it may import everything, nothing imports it.
"""
