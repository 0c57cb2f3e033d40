#!/usr/bin/perl
# Verify every DKIM-Signature of a message with Mail::DKIM, offline.
#
# usage: verify_maildkim.pl RECORDS.json < message
#
# RECORDS.json is "dkimkeep key dns --json".  DNS is answered from it.
# Debian 12's Mail::DKIM cannot verify Ed25519: those signatures are
# reported and skipped (exit status counts RSA signatures only); the run
# fails when no RSA signature passes or any RSA signature fails.
use strict;
use warnings;
use JSON::PP;
use Net::DNS;
use Mail::DKIM::Verifier;

my $file = shift or die "usage: $0 RECORDS.json < message\n";
open(my $fh, '<', $file) or die "$file: $!\n";
my $recs = decode_json(do { local $/; <$fh> });
my %txt;
for my $r (@$recs) {
	my $n = lc $r->{name};
	$n =~ s/\.$//;
	$txt{$n} = $r->{value};
}

no warnings 'redefine';
*Mail::DKIM::DNS::query = sub {
	my ($domain, $type) = @_;
	$domain = lc $domain;
	$domain =~ s/\.$//;
	return () unless $type eq 'TXT' && exists $txt{$domain};
	my $v = $txt{$domain};
	my @parts = ($v =~ /(.{1,255})/gs);
	return (Net::DNS::RR->new(name => $domain, type => 'TXT', txtdata => \@parts));
};

my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) {
	s/\015?\012$/\015\012/;
	$dkim->PRINT($_);
}
$dkim->CLOSE;

my ($pass, $fail) = (0, 0);
foreach my $sig ($dkim->signatures) {
	my $alg = $sig->algorithm;
	my $res = $sig->result;
	my $detail = $sig->result_detail;
	if ($alg =~ /ed25519/) {
		print "skip: $alg s=", $sig->selector, " (Mail::DKIM here has no Ed25519)\n";
		next;
	}
	print(($res eq 'pass' ? 'pass' : 'FAIL'), ": $alg s=", $sig->selector, " d=", $sig->domain,
	    " ($detail)\n");
	$res eq 'pass' ? $pass++ : $fail++;
}
exit(($pass > 0 && $fail == 0) ? 0 : 1);
