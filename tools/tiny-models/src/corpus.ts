/** A small English text the tokenizer's first merges are learned from (written for this package). */
export const CORPUS = `The model is split across several devices. Each device holds a slice of every weight, and the
devices talk to each other after the attention and after the feed forward network. A tensor parallel
world of two ranks halves the memory each rank needs, and a world of four halves it again.

Hello, world! This is a tiny model with random weights. It does not know any language, but it has the
same shapes and the same names as the real thing, so the loader, the planner and the engine can be
tested on it. When the numbers in the config change, the shapes of the tensors change with them.

The attention layer projects the hidden state into queries, keys and values. Every head looks at the
whole sequence, and the heads are shared out between the ranks. The keys and values of earlier tokens
are kept in a cache, so that each new token only needs one more row of work.

The feed forward network widens the hidden state, applies a nonlinear function, and narrows it again.
The first matrix is split by its columns and the second by its rows; the partial sums are added
together at the end, and every rank sees the same result. The embedding table and the output layer
can be split by the vocabulary, by the hidden size, or kept whole on every rank.

Parallel programs are easy to get wrong. Test the plan on small models first, then on larger ones,
and compare the results with a single device. If the numbers agree, the split is right; if they do
not, look at the order of the heads, the layout of the fused weights, and the place of the bias.
`;
