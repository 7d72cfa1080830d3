'use strict';
// Reading a file another process is appending JSON lines to (the local
// sink, the test receiver's record file) while it may be mid-write.

/**
 * The whole lines of `text`, empty ones left out. The writers append each
 * line and its newline in one write, but a reader can land in the middle
 * of it: a line of big spans covers many pages (a 60 KB prompt makes a
 * 500 KB line), and a reader polling such a writer saw half a line in 3 of
 * 101 reads. What follows the last newline is a line still being written,
 * read by the next look; parsing it threw a SyntaxError into the test.
 */
function wholeLines(text) {
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean);
}

module.exports = { wholeLines };
