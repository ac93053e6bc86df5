"""retroscope.models"""
