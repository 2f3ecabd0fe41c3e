import { describe, expect, test } from 'vitest';
import { PASSWORD_MIN, passwordProblem } from '../../domain/console-access.ts';

describe('passwordProblem', () => {
  test.each([
    ['too short', 'short one', `a password needs at least ${PASSWORD_MIN} characters`],
    [
      'the name of the address',
      'rita reviews results daily',
      'a password must not contain the name of the e-mail address ("rita")',
    ],
    ['one character over and over', 'aaaaaaaaaaaaaaaa', 'a password needs at least 5 different characters'],
    ['two characters in turn', 'abababababababab', 'a password needs at least 5 different characters'],
  ])('refuses a password that is %s', (_what, password, problem) => {
    expect(passwordProblem(password, 'rita@stmarys.example')).toBe(problem);
  });

  test('takes a long phrase of a few words', () => {
    expect(passwordProblem('copper kettle morning rain', 'rita@stmarys.example')).toBeNull();
  });
});
