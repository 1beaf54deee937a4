/*
 * cli.h - `culvert-edge tunnel ...` and `culvert-edge route ...`: a short-lived client of the
 * running edge's admin API (admin.h), with blocking sockets and timeouts.
 *
 *   culvert-edge tunnel create NAME | list | info NAME | delete NAME | rotate-token NAME
 *   culvert-edge route add HOSTNAME TUNNEL | delete HOSTNAME | list
 *
 * Options (anywhere after the group, `--opt value` or `--opt=value`):
 *   --admin URL              http://HOST:PORT (or HOST:PORT) or unix:/PATH
 *   --admin-token-file FILE  the admin token (mode 0600; refused when group/world readable)
 *   --config FILE            take admin.listen and admin.token_file from this edge.yml
 *   --output json|text       json prints the API's answer (PRODUCT.md section 2 shapes)
 *   --help, -h               help for the group or the command
 * Without --admin and --config, /etc/culvert/edge.yml is used when it exists, else
 * http://127.0.0.1:7845 with /etc/culvert/admin.token. --admin and --admin-token-file beat the
 * values from a config file. An admin address on all interfaces (0.0.0.0, ::) is reached on
 * loopback.
 *
 * Exit codes (PRODUCT.md section 2): 0 success; 2 usage error (the message names the flag or
 * argument) or an invalid config file; 1 anything else, including an edge that is not running:
 *   cannot reach the edge admin API at ADDR (connection refused): is `culvert-edge serve` running?
 * The admin token is never printed. `tunnel create` and `rotate-token` print the tunnel token
 * (once).
 */
#ifndef CV_CLI_H
#define CV_CLI_H

#include <stdio.h>

#define CLI_TIMEOUT_MS 30000 /* connect and whole-exchange deadline */

/* Runs the command in |argv| (|argv[0]| is "tunnel" or "route"), printing to stdout and stderr.
 * Returns the exit code. */
int cli_main(int argc, char **argv);

/* cli_main with explicit output streams (tests). Borrows |out| and |err|. */
int cli_run(int argc, char **argv, FILE *out, FILE *err);

#endif
