// What views share: the runs the list last showed, in order, so [ and ] move between them from a
// run or a step.

export const state = {
  /** Run ids as the runs list last showed them (newest first). */
  runIds: [],
};

/** The run before (`-1`, newer) or after (`+1`, older) `id` in the last runs list. */
export function neighbourRun(id, direction) {
  const i = state.runIds.indexOf(id);
  if (i < 0) return null;
  return state.runIds[i + direction] || null;
}
