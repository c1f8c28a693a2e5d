/**
 * A model that takes a while: stands for an ML model on a GPU.
 *
 * @module
 */

/** Classifies a text as "positive" or "negative", taking 200 ms to do it. */
export default class SentimentModel {
  #delay: number;

  /** Loads the model; `delay` is the seconds a prediction takes. */
  constructor(delay = 0.2) {
    this.#delay = delay;
  }

  /** Predicts the label of `text`. */
  async call(text: string): Promise<{ label: string; score: number }> {
    await new Promise((resolve) => setTimeout(resolve, this.#delay * 1000));
    const positive = /good|great|love|nice/i.test(text);
    return { label: positive ? "positive" : "negative", score: positive ? 0.9 : 0.2 };
  }
}
