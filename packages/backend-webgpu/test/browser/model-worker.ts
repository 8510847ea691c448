/**
 * One rank of the browser model test: a Web Worker that serves its rank with the browser backend — its
 * own adapter and device — reading only its own byte ranges of the safetensors file over HTTP (Range
 * requests). The URLs carry `?rank=` so the test's server can count the bytes each rank fetched.
 */
import { serveWebRank } from '@tp/core/browser';
import { browserBackend } from '../../src/browser.js';

const withRank = (url: string, rank: number) => `${url}${url.includes('?') ? '&' : '?'}rank=${rank}`;

serveWebRank(browserBackend, { fetch: (url, init, rank) => fetch(withRank(url, rank), init) });
