// How an offer gets the agent's attention: a short beep and a desktop notification.
// The beep is synthesised with WebAudio, so there is no audio file to ship or fetch.

let audio: AudioContext | null = null;

/**
 * Prepare the beep. Browsers allow audio only after a user gesture, so call this from a click
 * or key handler; the console does on the first one after it loads.
 */
export function unlockSound(): void {
  audio ??= new AudioContext();
  if (audio.state === 'suspended') void audio.resume();
}

/** Ask once whether offers may show desktop notifications (from a click: logging in, going available). */
export function askForNotifications(): void {
  if ('Notification' in window && Notification.permission === 'default') {
    void Notification.requestPermission();
  }
}

/** Both, for the gestures that mean "I am here to take conversations". */
export function unlockAttention(): void {
  unlockSound();
  askForNotifications();
}

export function beep(): void {
  if (!audio) return;
  const start = audio.currentTime;
  // Two rising tones: noticeable without being alarming for someone wearing a headset.
  [880, 1175].forEach((frequency, i) => {
    const oscillator = audio!.createOscillator();
    const gain = audio!.createGain();
    oscillator.type = 'sine';
    oscillator.frequency.value = frequency;
    const at = start + i * 0.18;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.16);
    oscillator.connect(gain).connect(audio!.destination);
    oscillator.start(at);
    oscillator.stop(at + 0.17);
  });
}

/** Show a desktop notification when the console is not in front; clicking it focuses the tab. */
export function notifyDesktop(title: string, body: string, tag: string): void {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  const notification = new Notification(title, { body, tag });
  notification.onclick = () => {
    window.focus();
    notification.close();
  };
}
