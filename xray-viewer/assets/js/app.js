// The viewer's entry point: the shell (navigation, live-connection indicator, help, token
// prompt) and the routes. Each view lives in its own module under views/.

import { route, start, onRender, render } from './router.js';
import { live } from './live.js';
import { api, onUnauthorized, setToken, getToken } from './api.js';
import { install as installShortcuts, toggleHelp } from './shortcuts.js';
import runsView from './views/runs.js';
import runView from './views/run.js';
import stepView from './views/step.js';
import candidateView from './views/candidate.js';
import stepsQueryView from './views/steps-query.js';
import compareView from './views/compare.js';
import analyticsView from './views/analytics.js';
import notFoundView from './views/not-found.js';

route('/', runsView);
route('/runs', runsView);
route('/runs/:id', runView);
route('/steps', stepsQueryView);
route('/steps/:id', stepView);
route('/candidates', candidateView);
route('/compare', compareView);
route('/analytics', analyticsView);
route('/404', notFoundView);

const conn = document.getElementById('conn');
const connText = conn.querySelector('.conn-text');
function showConnection(state) {
  conn.dataset.state = state;
  connText.textContent = {
    live: 'Live',
    connecting: 'Connecting…',
    offline: 'Live updates lost · reconnecting',
  }[state];
  conn.title = state === 'live'
    ? 'Receiving live updates'
    : 'The live connection is down; new runs and steps will appear once it is back. Click to retry now.';
}
live.addEventListener('state', (e) => showConnection(e.detail));
conn.addEventListener('click', () => {
  if (live.state !== 'live') live.connect();
});
showConnection(live.state);

// Highlight the current view in the navigation.
onRender((path) => {
  for (const a of document.querySelectorAll('.top nav a')) {
    const base = a.getAttribute('href');
    // A run and its steps belong to Runs; the Steps tab is the cross-run query.
    const here = base === '/'
      ? path === '/' || path.startsWith('/runs') || path.startsWith('/steps/')
      : base === '/steps' ? path === '/steps' || path === '/steps/' : path.startsWith(base);
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
});

// The token prompt, when the server answers 401.
const tokenDialog = document.getElementById('token');
let prompting = false;
onUnauthorized(() => {
  if (prompting) return;
  prompting = true;
  const form = tokenDialog.querySelector('form');
  const input = tokenDialog.querySelector('input');
  const error = tokenDialog.querySelector('.token-error');
  error.hidden = !getToken();
  input.value = '';
  tokenDialog.showModal();
  input.focus();
  form.onsubmit = async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await api.executions({ limit: 1 });
    } catch (e) {
      error.hidden = false;
      error.textContent = e.status === 401 ? 'That token was refused.' : e.message;
      return;
    }
    prompting = false;
    tokenDialog.close();
    live.connect();
    render();
  };
});

document.getElementById('help-button').addEventListener('click', () => toggleHelp());
installShortcuts();
start(document.getElementById('main'));
live.connect();
