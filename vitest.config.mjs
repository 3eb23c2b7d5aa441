// Only the Keyv test-suite runs under vitest (its official harness); every
// other test is a node:test file, __test__/*.test.js.
export default {
  test: {
    include: ['__test__/*.spec.mjs'],
    testTimeout: 30000,
    hookTimeout: 30000,
  },
};
