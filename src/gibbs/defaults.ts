/**
 * Defaults shared by hubs, workers and the CLI, as Python gibbs has them.
 *
 * @module
 */

/** The port a hub binds and workers connect to unless told otherwise (gibbs's default). */
export const DEFAULT_PORT = 5019;
