#!/bin/sh
# Print the version from runtime/engram.h (used by make install for the pkg-config file).
sed -n 's/^#define ENGRAM_VERSION_STRING "\(.*\)"/\1/p' "$(dirname "$0")/../runtime/engram.h"
