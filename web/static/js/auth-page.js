// auth-page.js: the sign-in and sign-up forms. They post JSON to the API
// with a same-origin fetch (the server refuses cross-origin writes), show the
// server's own error message, and go to the chat on success.
import { api } from './api.js';

const form = document.getElementById('auth-form');
const errorBox = document.getElementById('form-error');
const submit = form.querySelector('button[type=submit]');

function showError(message, field) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  for (const input of form.querySelectorAll('input')) {
    input.setAttribute('aria-invalid', String(input === field));
  }
  (field || errorBox).focus();
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (!username) return showError('Enter a username.', form.elements.username);
  if (!password) return showError('Enter a password.', form.elements.password);
  const repeat = form.elements.password2;
  if (repeat && repeat.value !== password) return showError('The two passwords differ.', repeat);

  errorBox.hidden = true;
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  try {
    await api('POST', form.dataset.endpoint, { username, password });
    location.assign('/');
  } catch (err) {
    showError(err.message || 'Something went wrong. Try again.');
  } finally {
    submit.disabled = false;
    submit.removeAttribute('aria-busy');
  }
});
