/**
 * A model that is cheaper in batches, as GPU models are: one call costs 20 ms whatever it
 * holds, plus 1 ms per item. Served with `--batch-size`, the worker calls `batch()` once per
 * batch of requests and answers each on its own.
 *
 * @module
 */

/** Pretend embeddings: each text's length and its number of words. */
export default class Embedder {
  /** One call for many texts: `items` holds each request's arguments. */
  async batch(items: [string][]): Promise<([number, number] | Error)[]> {
    await new Promise((resolve) => setTimeout(resolve, 20 + items.length));
    return items.map(([text]) =>
      typeof text === "string"
        ? [text.length, text.split(/\s+/).filter(Boolean).length]
        : new TypeError(`expected a text, got ${typeof text}`) // fails this request only
    );
  }
}
