// Karma settings for running sockjs-client 1.6.1's own browser suite (tests/browser.js) in
// Debian's headless Chromium, against our conformance server or against the sockjs-node
// reference. Copied into a sockjs-client checkout by run-sockjs-client-browser-suite.sh; it
// layers our choices over the suite's karma.conf.js rather than replacing it.
//
//   SUITE_TARGET  ours: a server already listening on SUITE_SERVER_PORT (ours);
//                 reference: the suite's own tests/support/sockjs_server.js, started here
//   SUITE_SERVER_PORT   where the SockJS server listens (karma proxies /sockjs-test/ to it)
//   KARMA_PORT          karma's own port (default 19876)
//   SUITE_RESULTS       file that gets one line per test: PASS|FAIL|SKIP, tab, full name
'use strict';

const fs = require('fs');
const suiteConfig = require('./karma.conf.js');

const target = process.env.SUITE_TARGET || 'ours';
const serverPort = parseInt(process.env.SUITE_SERVER_PORT, 10);
const karmaPort = parseInt(process.env.KARMA_PORT || '19876', 10);
const resultsFile = process.env.SUITE_RESULTS || 'suite-results.txt';

// The reference server, started by karma as the suite's own config does, on our port.
function startReference(config) {
  require('./tests/support/sockjs_server')(serverPort, config, '/sockjs-test');
}
startReference.$inject = ['config'];

// One line per test, so two runs can be compared test by test.
function PerTestReporter(baseReporterDecorator) {
  baseReporterDecorator(this);
  const lines = [];
  this.onSpecComplete = (browser, result) => {
    const state = result.skipped ? 'SKIP' : result.success ? 'PASS' : 'FAIL';
    const name = [...result.suite, result.description].join(' > ');
    const why = state === 'FAIL' ? '\t' + result.log.join(' | ').split('\n')[0] : '';
    lines.push(`${state}\t${name}${why}`);
  };
  this.onRunComplete = (browsers, summary) => {
    fs.writeFileSync(resultsFile, lines.join('\n') + '\n');
    const skipped = lines.filter((line) => line.startsWith('SKIP')).length;
    console.log(`suite: ${summary.success} passed, ${summary.failed} failed, ${skipped} skipped`);
  };
}
PerTestReporter.$inject = ['baseReporterDecorator'];

module.exports = function (config) {
  suiteConfig(config);
  const ours = target === 'ours';
  config.set({
    plugins: [
      'karma-*',
      { 'reporter:per-test': ['type', PerTestReporter] },
      ...(ours ? [] : [{ 'framework:sock': ['factory', startReference] }]),
    ],
    frameworks: ours ? ['mocha', 'browserify'] : ['sock', 'mocha', 'browserify'],
    proxies: { '/sockjs-test/': `http://127.0.0.1:${serverPort}/` },
    port: karmaPort,
    listenAddress: '127.0.0.1',
    hostname: '127.0.0.1',
    browsers: ['DebianChromiumHeadless'],
    customLaunchers: {
      DebianChromiumHeadless: { base: 'ChromeHeadless', flags: ['--no-sandbox'] },
    },
    reporters: ['per-test'],
    concurrency: 1,
    browserNoActivityTimeout: 120000,
  });
};
