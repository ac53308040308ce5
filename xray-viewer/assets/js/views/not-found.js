// Any path the viewer does not know.

import { h, replace } from '../dom.js';

export default {
  title: 'Not found',
  render({ outlet }) {
    replace(outlet, h('h1', {}, 'Nothing here'),
      h('p', {}, 'This address is not a view of the viewer. ', h('a', { href: '/' }, 'Go to the runs list.')));
  },
};
