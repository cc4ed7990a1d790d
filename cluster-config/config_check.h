// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * `disco config check [--no-host] FILE`: the whole subcommand, with its
 * arguments after "check" (argv[0] is "check"). Exit status 0 when the
 * file is valid, 1 otherwise.
 */
#ifndef DISCO_CONFIG_CHECK_H
#define DISCO_CONFIG_CHECK_H

int disco_config_check(int argc, char **argv);

#endif
