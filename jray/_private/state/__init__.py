"""The state API's engine side: ``client.py`` makes the calls (to the GCS
and every live raylet), ``rows.py`` turns replies into Ray's rows. The
public functions are ``jray.util.state``'s."""
