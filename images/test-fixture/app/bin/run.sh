#!/bin/sh
# The demo service the test recipe installs.
exec sleep infinity
