/**
 * An LLM-shaped model without the model: an async generator that "generates" the tokens of a
 * canned answer, one every 60 ms, and stops as soon as its caller goes away.
 *
 * @module
 */

import { requestSignal } from "../../mod.ts";

const ANSWER = "ZeroMQ is a messaging library: sockets that carry whole messages, with " +
  "patterns such as request-reply, and gibbs builds a pool of model workers on it.";

/** Yields the answer to `prompt` word by word, as a language model yields tokens. */
export default async function* generate(prompt: string, opts: { delayMs?: number } = {}) {
  const signal = requestSignal();
  const words = `You asked: "${prompt}". ${ANSWER}`.split(" ");
  for (const word of words) {
    // A caller that gave up (closed its page, aborted) frees the worker at once.
    if (signal.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, opts.delayMs ?? 60));
    yield `${word} `;
  }
}
